"""Credentials for the fuzzer: which key or token each operation of docs/openapi.yaml needs.

Loaded by schemathesis (SCHEMATHESIS_HOOKS). Operations behind an access token get the token of
a user registered for that very test case, so that no case depends on what an earlier one did
(a logout, a password change or a reset would otherwise revoke a shared token and leave every
later case with a 401). A case that already carries an Authorization header (a link passing on
the token of the previous step) keeps it.
"""
import json
import os
import re
import urllib.request
import uuid

import schemathesis

BASE = os.environ["TESSERA_CONTRACT_URL"]
ADMIN_KEY = os.environ["TESSERA_CONTRACT_ADMIN_KEY"]
SERVICE_KEY = os.environ["TESSERA_CONTRACT_SERVICE_KEY"]
METRICS_KEY = os.environ["TESSERA_CONTRACT_METRICS_KEY"]
PASSWORD = "contract password"
LINKED_TOKEN = re.compile(r"^Bearer eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{40,}$")


def fresh_access_token():
    body = json.dumps({"email": f"fuzz-{uuid.uuid4().hex[:16]}@example.com", "password": PASSWORD}).encode()
    request = urllib.request.Request(
        BASE + "/v1/auth/register", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


def schemes(case):
    """The security scheme names the operation accepts."""
    requirements = case.operation.definition.raw.get("security") or []
    return {name for requirement in requirements for name in requirement}


@schemathesis.auth(refresh_interval=None)
class TesseraAuth:
    def get(self, case, context):
        accepted = schemes(case)
        if "adminKey" in accepted:
            return ADMIN_KEY
        if "serviceKey" in accepted:
            return SERVICE_KEY
        if "metricsKey" in accepted:
            return METRICS_KEY
        if "accessToken" in accepted:
            return fresh_access_token()
        return None

    def set(self, case, data, context):
        if data is None:
            return
        headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"}
        # A token a link carried over from an earlier answer (a real JWT) stays; a value the
        # fuzzer made up for the security scheme is replaced.
        carried = [value for name, value in (case.headers or {}).items() if name.lower() == "authorization"]
        if carried and isinstance(carried[0], str) and LINKED_TOKEN.match(carried[0]):
            headers["Authorization"] = carried[0]
        else:
            headers["Authorization"] = f"Bearer {data}"
        case.headers = headers


UPSTREAM_TOKEN_ENDPOINT = os.environ["TESSERA_CONTRACT_TOKEN_ENDPOINT"]


@schemathesis.hook
def map_case(context, case):
    """A valid OAuth2 credential names a token endpoint under the deployment's
    `--upstream-token-endpoints`, a list the document cannot state; the run's server allows one
    fake endpoint (run.py serves it), so a positive case names that one, as a real client would.
    Negative cases are left as generated."""
    body = case.body
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and isinstance(body, dict) and body.get("type") == "oauth2" and isinstance(body.get("token_endpoint"), str):
        case.body = dict(body, token_endpoint=UPSTREAM_TOKEN_ENDPOINT)
    # Re-authentication (password change, MFA changes) needs the current password of the user
    # whose token the case carries, which is PASSWORD for every user registered above: without
    # it every positive case would stop at 401 before the operation's own logic.
    if positive and isinstance(body, dict) and case.operation.label in REAUTHENTICATING:
        field = REAUTHENTICATING[case.operation.label]
        if isinstance(body.get(field), str):
            case.body = dict(body, **{field: PASSWORD})
    return case


REAUTHENTICATING = {
    "POST /v1/auth/password/change": "current_password",
    "POST /v1/auth/mfa/enroll": "password",
    "POST /v1/auth/mfa/confirm": "password",
    "POST /v1/auth/mfa/disable": "password",
    "POST /v1/auth/mfa/recovery-codes": "password",
}
