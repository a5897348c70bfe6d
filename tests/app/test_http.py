"""HTTP details real clients rely on: HEAD on every GET route, CSV numbers as CSV means them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

GET_ROUTES = [
    "/ping",
    "/execution-parameters",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/mlship",
    "/v2/models/mlship/ready",
    "/openapi.json",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)

    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    if path != "/metrics":  # the metrics text changes between the two requests
        assert head.headers["content-length"] == get.headers["content-length"]


def test_head_on_a_post_route_is_still_405(client: TestClient) -> None:
    assert client.head("/v1/predict").status_code == 405


def _csv(client: TestClient, body: str) -> tuple[int, str]:
    r = client.post("/invocations", content=body.encode(), headers={"Content-Type": "text/csv"})
    return r.status_code, r.json().get("error", "") if r.status_code != 200 else ""


@pytest.mark.parametrize(
    "cell",
    ["1_000", "\u0661\u0662", "\uff11\uff12"],  # underscore, Arabic-Indic, full-width
)
def test_csv_numbers_are_ascii_decimals(client: TestClient, cell: str) -> None:
    status, error = _csv(client, ",".join([cell] + ["1.5"] * 29))

    assert status == 422
    assert error == (
        "CSV row 0: feature 'mean_radius' is not a number; send numeric rows without a header."
    )


@pytest.mark.parametrize("cell", ["1000", "-1.5e3", "+.5", "1."])
def test_csv_plain_numbers_still_parse(client: TestClient, cell: str) -> None:
    assert _csv(client, ",".join([cell] + ["1.5"] * 29))[0] == 200


def test_csv_unterminated_quote_is_a_malformed_body(client: TestClient) -> None:
    status, error = _csv(client, '"1.0,' + ",".join(["1.5"] * 29))

    assert status == 400
    assert error.startswith("The CSV body cannot be parsed: ")
