"""The HTTP client for OPA's REST API. Every call Gavel makes to OPA goes through here."""
from __future__ import annotations

import json
from typing import Any

import httpx
from django.conf import settings


class OpaError(Exception):
    """OPA could not do what was asked."""


class OpaUnreachable(OpaError):
    """No answer from OPA: connection refused, timeout, or a 5xx from a proxy in between."""


# How a task that pushes to OPA (a publication, a runtime config) retries while OPA does not
# answer: exponential backoff with jitter, then it records the failure for a person to see.
RETRY_WHILE_UNREACHABLE = dict(
    autoretry_for=(OpaUnreachable,),
    retry_backoff=settings.GAVEL_PUBLISH_RETRY_BACKOFF,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.GAVEL_PUBLISH_MAX_RETRIES,
)


class OpaRejected(OpaError):
    """OPA answered and refused, e.g. a compile error on PUT /v1/policies."""

    def __init__(self, status_code: int, body: dict[str, Any]):
        self.status_code = status_code
        self.code = body.get("code", "")
        self.errors = body.get("errors", [])
        message = body.get("message") or f"HTTP {status_code}"
        super().__init__(message)


class OpaClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float | None = None,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout or settings.OPA_TIMEOUT_SECONDS,
            transport=transport, trust_env=transport is None,  # a transport of its own goes nowhere else
        )

    def __enter__(self) -> OpaClient:
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    def _request(self, method: str, url: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise OpaUnreachable(f"{self.base_url}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500 and response.status_code != 500:
            # 502/503/504 come from something in front of OPA, not from OPA's compiler.
            raise OpaUnreachable(f"{self.base_url}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            return response.json()
        except ValueError:
            return {"message": response.text[:500]}

    def put_policy(self, policy_id: str, source: str) -> None:
        response = self._request(
            "PUT", f"/v1/policies/{policy_id}", content=source.encode(), headers={"Content-Type": "text/plain"}
        )
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))

    def get_policy(self, policy_id: str) -> dict[str, Any] | None:
        """The module as OPA holds it ({"id", "raw", "ast"}), or None when OPA has no such policy."""
        response = self._request("GET", f"/v1/policies/{policy_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return self._json(response)["result"]

    def list_policies(self) -> list[dict[str, Any]]:
        """Every module OPA holds ({"id", "raw", "ast"}), in one round trip."""
        response = self._request("GET", "/v1/policies")
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return self._json(response)["result"]

    def list_policy_ids(self) -> list[str]:
        return [policy["id"] for policy in self.list_policies()]

    def delete_policy(self, policy_id: str) -> None:
        response = self._request("DELETE", f"/v1/policies/{policy_id}")
        if response.status_code not in (200, 404):
            raise OpaRejected(response.status_code, self._json(response))

    def put_data(self, data_path: str, document: Any) -> None:
        """Replace the document at /v1/data/<path> in one write."""
        response = self._request("PUT", f"/v1/data/{data_path.strip('/')}", json=document)
        if response.status_code != 204:
            raise OpaRejected(response.status_code, self._json(response))

    def get_data(self, data_path: str) -> Any:
        """The document at /v1/data/<path> (None when undefined)."""
        response = self._request("GET", f"/v1/data/{data_path.strip('/')}")
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return self._json(response).get("result")

    def decide(self, data_path: str, input_document: Any) -> dict[str, Any]:
        """POST /v1/data/<path>: OPA's answer, with `result` (absent when undefined) and `decision_id`."""
        response = self._request("POST", f"/v1/data/{data_path.strip('/')}", json={"input": input_document})
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return self._json(response)

    def evaluate(self, data_path: str, input_json: str) -> Any:
        """POST /v1/data/<path> for an input the caller holds as JSON text (sent as it is, not
        parsed and dumped again): the document's value, None when undefined."""
        body = b'{"input":' + input_json.encode("utf-8") + b"}"
        response = self._request("POST", f"/v1/data/{data_path.strip('/')}", content=body,
                                 headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return json.loads(response.content).get("result")

    def query(self, rego_query: str, input_document: Any = None) -> list[dict[str, Any]]:
        """POST /v1/query: an ad-hoc query; one round trip however many inputs it walks over."""
        body: dict[str, Any] = {"query": rego_query}
        if input_document is not None:
            body["input"] = input_document
        response = self._request("POST", "/v1/query", json=body)
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        return self._json(response).get("result", [])

    def query_explained(self, rego_query: str, input_document: Any = None,
                        explain: str = "full") -> tuple[list[dict[str, Any]], list[str]]:
        """POST /v1/query with OPA's explanation on: the result rows and the trace, as the
        lines OPA itself prints for it (`pretty`), one event a line."""
        body: dict[str, Any] = {"query": rego_query}
        if input_document is not None:
            body["input"] = input_document
        response = self._request("POST", "/v1/query", params={"explain": explain, "pretty": "true"}, json=body)
        if response.status_code != 200:
            raise OpaRejected(response.status_code, self._json(response))
        answer = self._json(response)
        return answer.get("result", []), answer.get("explanation") or []

    def healthy(self, timeout: float | None = None) -> bool:
        try:
            return self._request("GET", "/health", **({"timeout": timeout} if timeout else {})).status_code == 200
        except OpaUnreachable:
            return False


def opa_client(base_url: str | None = None, token: str | None = None, timeout: float | None = None) -> OpaClient:
    """A client for the configured OPA (OPA_URL), or for `base_url` when given; with the
    instance's own `token` when it has one, else GAVEL_OPA_TOKEN."""
    return OpaClient(base_url or settings.OPA_URL, token=token or settings.GAVEL_OPA_TOKEN, timeout=timeout)
