"""Schemathesis hooks of scripts/openapi-fuzz: the one check that stands in for
`positive_data_acceptance` on the operations where a request the OpenAPI description allows
may still be refused for a reason no OpenAPI description can state.

OpenAPI has no way to say that two query parameters exclude each other or need each other, nor
to compare two dates of a body, sum a list, hold a date to today, or know a fund's currency.
On the operations of OPERATIONS, a request schemathesis generated as valid is accepted, or
refused with exactly one of these documented answers (each in the operation's description):

- `at` and `as_of` together (figures, IATI exports): 400 `bad_request`;
- an IATI export without `reporting_org` of a file with a fund that has no `iati_org_ref`, or
  with funds of different ones (the parameter is required then): 400 `bad_request`;
- `position` without `hash`, or `hash` without `position` (`/v1/verify`): 400 `bad_request`;
- a command (`POST /v1/commands`): 409 or 422 (a rule of docs/errors.md refuses it), or 400
  for the rules the schema cannot state: `future_date`; `malformed_command` for a sector list
  that does not sum to 100 or names a code twice, `ends_on` before `starts_on` (the body's or
  the grant's), `due_on` before `period_end`; `invalid_amount` for more decimals than the fund's
  currency has.

Anything else is a failure, as the built-in check would report it.
"""

import re

import schemathesis

# The operations whose built-in `positive_data_acceptance` scripts/openapi-fuzz.toml turns off.
OPERATIONS = {"get_grant", "get_fund", "export_iati", "export_iati_org", "verify", "post_command"}

ACCEPTED = set(range(200, 300)) | {401, 403, 404, 429}

# malformed_command messages of the rules a schema cannot state (crates/grantflow-domain/src/parse.rs).
UNSTATABLE = re.compile(
    r"percentages sum to exactly 100"
    r"|is named twice"
    r"|field `ends_on` \([0-9-]+\) is before `starts_on`"
    r"|field `ends_on` \([0-9-]+\) is before grant \S+'s `starts_on`"
    r"|field `due_on` \([0-9-]+\) is before `period_end`"
)


def _present(query, name):
    return query is not None and query.get(name) is not None


def _explained(case, response):
    """Why a valid request was refused, when it is one of the documented reasons; else None."""
    status = response.status_code
    query = case.query or {}
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id == "post_command":
        if status in (409, 422):
            return "a rule refused the command"
        if status != 400:
            return None
        try:
            error = response.json()["error"]
        except Exception:
            return None
        code, message = error.get("code"), error.get("message", "")
        if code == "future_date":
            return "a date after today"
        if code == "malformed_command" and UNSTATABLE.search(message):
            return "a rule between fields"
        if code == "invalid_amount" and " amounts ha" in message:
            return "more decimals than the fund's currency has"
        return None
    if status != 400:
        return None
    if operation_id == "verify":
        if _present(query, "position") != _present(query, "hash"):
            return "half a checkpoint"
        return None
    if _present(query, "at") and _present(query, "as_of"):
        return "both at and as_of"
    if operation_id in ("export_iati", "export_iati_org") and not _present(query, "reporting_org"):
        if "no IATI organisation identifier" in response.text or "different IATI organisation" in response.text:
            return "no reporting organisation"
    return None


@schemathesis.check
def grantflow_positive_data_acceptance(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if case.operation.definition.raw.get("operationId") not in OPERATIONS:
        return None
    if response.status_code in ACCEPTED or response.status_code >= 500:
        return None
    if _explained(case, response) is None:
        raise AssertionError(
            f"Valid data should have been accepted, or refused for a documented reason "
            f"(scripts/openapi-fuzz-hooks.py); got {response.status_code}: {response.text[:500]}"
        )
    return None
