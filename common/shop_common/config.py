"""Config for processes that are not run by ``nameko run`` (gateway, tools).

Same YAML files and the same ``${ENV_VAR:default}`` substitution that Nameko
applies, so one config.yaml per component serves both.
"""
from nameko.cli.utils.config import load_config as _nameko_load_config


def load_config(path):
    with open(path) as handle:
        return _nameko_load_config(handle)
