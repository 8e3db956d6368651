"""schemathesis hooks for tests/api_schema.sh.

A generated app name is almost never a configured one, so most calls would stop at
`404 unknown_app` before their body is read. This sends most of them to the two apps the
script configures instead, and keeps the generated name for the rest. Only names the spec calls
valid are replaced: a name generated to be invalid stays invalid.
"""

import re

import schemathesis
from hypothesis import strategies as st

APPS = ["api", "web"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    app = (path_parameters or {}).get("app")
    if not (isinstance(app, str) and NAME.fullmatch(app)):
        return st.just(path_parameters)
    return st.sampled_from([app, *APPS, *APPS, *APPS]).map(
        lambda name: {**path_parameters, "app": name}
    )
