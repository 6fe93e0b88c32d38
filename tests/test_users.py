"""Registration, login, profile: the contract's Users section against the real stack."""
import psycopg2


def test_register_login_and_profile(api):
    email, password, user = api.register(email="Mixed.Case@Example.com")
    assert user == {"id": user["id"], "email": "mixed.case@example.com", "name": "Test Shopper"}

    login = api.post("/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]

    me = api.get("/users/me", token=body["access_token"])
    assert me.status_code == 200
    assert me.json()["address"]["city"] == "Springfield"
    assert me.json()["preferences"] == {}


def test_password_is_stored_as_argon2_hash(api, shop):
    email, password, _ = api.register()
    connection = psycopg2.connect(shop.profile.database_url("users").replace("+psycopg2", ""))
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT password_hash FROM users WHERE email = %s", (email,))
        (stored,) = cursor.fetchone()
    connection.close()
    assert stored.startswith("$argon2id$") and password not in stored


def test_duplicate_email_is_409(api):
    email, _, _ = api.register()
    again = api.post("/auth/register", json={
        "email": email.upper(), "password": "another-pass-1", "name": "X",
        "address": {"line1": "a", "city": "b", "postal_code": "c", "country": "d"}})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


def test_registration_validation_names_fields(api):
    response = api.post("/auth/register", json={"email": "not-an-email", "password": "short", "name": "",
                                                 "address": {"line1": "x"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"email", "password", "name", "address.city"} <= set(error["details"])


def test_wrong_password_and_unknown_email_look_the_same(api):
    email, _, _ = api.register()
    wrong = api.post("/auth/login", json={"email": email, "password": "not-the-password"})
    unknown = api.post("/auth/login", json={"email": "nobody-here@example.com", "password": "whatever-1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_profile_needs_a_valid_token(api):
    assert api.get("/users/me").status_code == 401
    bad = api.get("/users/me", token="not.a.jwt")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"


def test_patch_profile(shopper):
    response = shopper.patch("/users/me", json={
        "name": "New Name", "preferences": {"newsletter": True},
        "address": {"line1": "2 Side St", "city": "Shelbyville", "postal_code": "54321", "country": "US"}})
    assert response.status_code == 200, response.text
    me = shopper.get("/users/me").json()
    assert me["name"] == "New Name"
    assert me["preferences"] == {"newsletter": True}
    assert me["address"]["city"] == "Shelbyville"
    bad = shopper.patch("/users/me", json={"email": "x@y.z"})
    assert bad.status_code == 400 and "email" in bad.json()["error"]["details"]


def test_forty_parallel_guesses_get_five_checks_and_the_owner_still_logs_in(api):
    """Through the real gunicorn and Redis: counted before the check, per account and client (one trusted
    proxy in front, as the test stack is configured: X-Forwarded-For tells clients apart)."""
    from concurrent.futures import ThreadPoolExecutor

    email, password, _ = api.register()

    def guess(_):
        return api.post("/auth/login", json={"email": f" {email.upper()} ", "password": "wrong-guess"},
                        headers={"X-Forwarded-For": "198.51.100.23"})

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(guess, range(40)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [429] * 35
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) > 0
    owner = api.post("/auth/login", json={"email": email, "password": password},
                     headers={"X-Forwarded-For": "203.0.113.50"})
    assert owner.status_code == 200


def test_sessions_refresh_once_a_replayed_refresh_ends_them_and_logout_everywhere_revokes_access(api):
    email, password, _ = api.register()
    login = api.post("/auth/login", json={"email": email, "password": password}).json()
    assert login["expires_in"] > 0 and login["refresh_token"] and login["refresh_expires_in"] > 0
    refreshed = api.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != login["refresh_token"]
    assert api.get("/users/me", token=refreshed.json()["access_token"]).status_code == 200
    replayed = api.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})  # a stolen copy
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "invalid_refresh_token"
    gone = api.post("/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    assert gone.status_code == 401  # the whole session ended with it

    first = api.post("/auth/login", json={"email": email, "password": password}).json()
    second = api.post("/auth/login", json={"email": email, "password": password}).json()
    out = api.post("/auth/logout", json={"everywhere": True}, token=second["access_token"])
    assert out.status_code == 200 and out.json() == {"logged_out": True, "everywhere": True}
    for session in (first, second):
        revoked = api.get("/users/me", token=session["access_token"])
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
        assert api.post("/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401
    again = api.post("/auth/login", json={"email": email, "password": password}).json()
    assert api.get("/users/me", token=again["access_token"]).status_code == 200  # a new login works at once


def test_a_password_change_needs_the_current_one_and_ends_every_other_session(api):
    email, password, _ = api.register()
    old = api.post("/auth/login", json={"email": email, "password": password}).json()
    wrong = api.post("/users/me/password", json={"current_password": "not-it", "new_password": "a-new-pass-2"},
                     token=old["access_token"])
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    changed = api.post("/users/me/password", json={"current_password": password, "new_password": "a-new-pass-2"},
                       token=old["access_token"])
    assert changed.status_code == 200 and changed.json()["refresh_token"]
    assert api.get("/users/me", token=old["access_token"]).status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": old["refresh_token"]}).status_code == 401
    assert api.get("/users/me", token=changed.json()["access_token"]).status_code == 200
    assert api.post("/auth/login", json={"email": email, "password": password}).status_code == 401
    assert api.post("/auth/login", json={"email": email, "password": "a-new-pass-2"}).status_code == 200
