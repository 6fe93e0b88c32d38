"""/docs in a real headless Chromium: the interactive reference loads without errors and lists
every operation of /openapi.json."""
import pytest

from browser import Chromium

OPERATIONS_SHOWN = """Array.from(document.querySelectorAll('.opblock')).map(block =>
    [block.querySelector('.opblock-summary-method').textContent.toLowerCase(),
     block.querySelector('.opblock-summary-path').getAttribute('data-path')])"""


@pytest.fixture
def chromium(tmp_path):
    browser = Chromium(tmp_path / "profile")
    yield browser
    browser.close()


def test_the_docs_page_lists_every_operation_with_no_console_errors(api, chromium):
    spec = api.get("/openapi.json").json()
    expected = sorted([method, path] for path, operations in spec["paths"].items() for method in operations)
    chromium.open(api.base_url + "/docs/")
    shown = chromium.wait_until(f"(() => {{ const shown = {OPERATIONS_SHOWN}; "
                                f"return shown.length >= {len(expected)} ? shown : null }})()")
    assert sorted(shown or chromium.evaluate(OPERATIONS_SHOWN)) == expected
    assert chromium.evaluate("document.title") == "The shop: REST API"
    assert chromium.evaluate("!!document.querySelector('.info .title')")  # the document parsed, not an error box
    assert chromium.errors() == []
