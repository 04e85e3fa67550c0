"""Schemathesis fuzzes every operation of the API's own OpenAPI document over real HTTP.

Valid and invalid inputs alike: bad input must get a 4xx with the error envelope, never a
500, and every response must match what the document declares (status codes, content types,
bodies). Each operation is a test of its own, so a failure names the route.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import unique

# Hypothesis warns when the global ``random`` generator moves while it draws a case. Here the
# API, workers and connection pools run in this process's background threads, and their
# libraries (Dramatiq's Redis consumer, psycopg's pool) draw from it; the cases themselves
# never do. The warning says nothing about these tests, so it is not turned into an error.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/posts"),
    ("POST", "/api/posts"),
    ("GET", "/api/posts/{post_id}"),
    ("PATCH", "/api/posts/{post_id}"),
    ("DELETE", "/api/posts/{post_id}"),
    ("POST", "/api/posts/{post_id}/republish"),
    ("GET", "/api/posts/{post_id}/history"),
    ("GET", "/api/integrations"),
    ("GET", "/api/integrations/{integration_id}"),
    ("GET", "/api/integrations/{provider}/auth"),
    ("GET", "/api/integrations/{provider}/callback"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/me"),
    ("POST", "/api/organizations"),
    ("POST", "/api/organizations/active"),
    ("PATCH", "/api/organization"),
    ("GET", "/api/tokens"),
    ("POST", "/api/tokens"),
    ("DELETE", "/api/tokens/{token_id}"),
    ("POST", "/api/media/presign"),
    ("PATCH", "/api/integrations/{integration_id}"),
    ("DELETE", "/api/integrations/{integration_id}"),
    ("GET", "/api/integrations/{integration_id}/history"),
    ("GET", "/api/integrations/choices/{choice}"),
    ("POST", "/api/integrations/choices/{choice}"),
    ("POST", "/api/integrations/{provider}/choose"),
    ("GET", "/api/analytics/optimal-times"),
    ("GET", "/api/analytics/optimal-times/by-account"),
    ("GET", "/api/analytics/next-optimal-time"),
    ("GET", "/api/analytics/weekly-schedule"),
    ("GET", "/api/analytics/engagement-summary"),
    ("GET", "/api/collections"),
    ("POST", "/api/collections"),
    ("GET", "/api/collections/{collection_id}"),
    ("PATCH", "/api/collections/{collection_id}"),
    ("DELETE", "/api/collections/{collection_id}"),
    ("POST", "/api/collections/{collection_id}/accounts"),
    ("DELETE", "/api/collections/{collection_id}/accounts/{integration_id}"),
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications/read-all"),
    ("POST", "/api/notifications/{notification_id}/read"),
]


@pytest.fixture(scope="session")
def fuzz_headers(kairos: Any) -> dict[str, str]:
    user, org = kairos.identity.create_user(
        email=f"{unique('fuzz')}@example.com", password="fuzz-password-123", name="fuzz"
    )
    token = kairos.identity.issue_token_for(user.id, org.id, name="fuzz", expires_in_days=None)
    return {"Authorization": f"Bearer {token.secret}"}


@pytest.fixture(scope="session")
def api_schema(api_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


def test_the_document_lists_every_operation(api_schema: Any) -> None:
    listed = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert listed == set(OPERATIONS)


def test_validation_errors_are_documented_as_400_not_422(api_url: str) -> None:
    document = httpx.get(f"{api_url}/openapi.json").json()
    create = document["paths"]["/api/posts"]["post"]["responses"]
    assert "400" in create
    assert "413" in create
    assert "HTTPValidationError" not in str(document)


# Operations with no input a schema could call invalid: negative generation has nothing to vary.
WITHOUT_INPUT = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/integrations"),
    ("GET", "/api/integrations/{provider}/callback"),
    ("GET", "/api/collections"),
    ("POST", "/api/notifications/read-all"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/me"),
    ("GET", "/api/tokens"),
}
CASES = [
    pytest.param(method, path, mode, id=f"{mode.value}-{method}-{path}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or (method, path) not in WITHOUT_INPUT
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_answers_within_its_contract(
    api_schema: Any, fuzz_headers: dict[str, str], method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=fuzz_headers, checks=checks)

    exercise()
