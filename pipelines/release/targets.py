"""Where a prediction request goes: a SageMaker endpoint or an mlship service over HTTP.

A SageMaker endpoint is called through ``sagemaker-runtime`` InvokeEndpoint with the standard
AWS configuration (``AWS_ENDPOINT_URL`` included, so tests point it at moto); a service is called
on its REST route with an API key in ``X-API-Key``. Every way a call can fail becomes one of the
errors below, each naming the problem and the fix; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import MlshipError

if TYPE_CHECKING:
    from types_boto3_sagemaker import SageMakerClient
    from types_boto3_sagemaker_runtime import SageMakerRuntimeClient

CONTENT_TYPE = "application/json"
HTTP_ROUTE = "/v1/predict"
API_KEY_HEADER = "X-API-Key"
_XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)


class EndpointError(MlshipError):
    """The target could not be invoked."""


class EndpointNotFound(EndpointError):
    """The endpoint (or URL route) does not exist."""


class EndpointNotReady(EndpointError):
    """The endpoint exists but is not InService."""


class CredentialsDenied(EndpointError):
    """The caller has no credentials, or they were refused."""


class EndpointTimeout(EndpointError):
    """No answer within the per-request timeout."""


class EndpointUnreachable(EndpointError):
    """Nothing accepted the connection."""


class InvocationFailed(EndpointError):
    """The target answered with an error, or with something that is not a prediction."""


class Target(Protocol):
    """Something that answers prediction requests."""

    @property
    def description(self) -> str: ...

    def check(self) -> None:
        """Raise an :class:`EndpointError` when the target is visibly not usable."""

    def invoke(self, body: bytes) -> bytes:
        """Send one request body; return the response body or raise an :class:`EndpointError`."""


def _client_error_code(e: Exception) -> tuple[str, str, dict[str, Any]]:
    response: Any = getattr(e, "response", None)
    if not isinstance(response, dict):
        return "", str(e), {}
    err = response.get("Error", {})
    code, message = str(err.get("Code", "")), str(err.get("Message", ""))
    # Some endpoints (and emulators) answer a JSON-protocol call with an XML error document.
    inner_code, inner_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
    if inner_message:
        code = inner_code.group(1) if inner_code else code
        message = inner_message.group(1)
    return code, message, response


class SageMakerTarget:
    """A SageMaker real-time endpoint, invoked through ``sagemaker-runtime``."""

    def __init__(
        self,
        endpoint: str,
        timeout: float,
        max_attempts: int = 1,
        pool_size: int = 10,
        runtime: SageMakerRuntimeClient | None = None,
        control: SageMakerClient | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.endpoint = endpoint
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=pool_size,
        )
        # A session of our own: credentials are resolved now, not cached from an earlier caller.
        session = boto3.session.Session()
        self._runtime = runtime or session.client("sagemaker-runtime", config=config)
        self._control = control or session.client("sagemaker", config=config)

    @property
    def description(self) -> str:
        return f"SageMaker endpoint {self.endpoint}"

    def check(self) -> None:
        """Fail early, with the endpoint's status, when it is missing or not InService.

        A caller allowed to invoke but not to describe the endpoint skips this check: the
        invocation's own errors are just as clear.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            status = self._control.describe_endpoint(EndpointName=self.endpoint)
        except ClientError as e:
            code, _, _ = _client_error_code(e)
            if code in ("AccessDenied", "AccessDeniedException"):
                return
            raise self._translate(e) from e
        except BotoCoreError as e:
            raise self._translate(e) from e
        if status["EndpointStatus"] != "InService":
            reason = status.get("FailureReason")
            raise EndpointNotReady(
                f"{self.description} is {status['EndpointStatus']}, not InService"
                + (f" ({reason})" if reason else "")
                + ". Wait for the deployment to finish (`aws sagemaker wait endpoint-in-service "
                f"--endpoint-name {self.endpoint}`), or inspect it in the SageMaker console."
            )

    def invoke(self, body: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=self.endpoint,
                Body=body,
                ContentType=CONTENT_TYPE,
                Accept=CONTENT_TYPE,
            )
            return response["Body"].read()
        except (BotoCoreError, ClientError) as e:
            raise self._translate(e) from e

    def _translate(self, e: Exception) -> EndpointError:
        """Map a botocore error to the mlship error a user can act on."""
        from botocore.exceptions import (
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        name = self.description
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return CredentialsDenied(
                f"No AWS credentials to call {name} ({e}). Configure credentials (in CI: "
                "aws-actions/configure-aws-credentials with the stack's deploy role)."
            )
        if isinstance(e, NoRegionError):
            return EndpointError(
                f"No AWS region to call {name}. Set AWS_REGION (the region of the stack)."
            )
        if isinstance(e, (ReadTimeoutError, ConnectTimeoutError)):
            return EndpointTimeout(
                f"{name} did not answer in time ({e}). Check the endpoint's CloudWatch metrics "
                "(ModelLatency) or raise --timeout."
            )
        if isinstance(e, EndpointConnectionError):
            return EndpointUnreachable(
                f"Could not connect to the SageMaker runtime for {name} ({e}). Check AWS_REGION "
                "and, if set, AWS_ENDPOINT_URL."
            )
        code, message, response = _client_error_code(e)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _DENIED_CODES or status in (401, 403):
            return CredentialsDenied(
                f"AWS refused the credentials calling {name} ({code}: {message}). The role needs "
                "sagemaker:InvokeEndpoint (and sagemaker:DescribeEndpoint) on this endpoint; "
                "check which identity you use with `aws sts get-caller-identity`."
            )
        lowered = message.lower()
        if code in ("ValidationException", "ValidationError") and (
            "not found" in lowered or "could not find" in lowered
        ):
            return EndpointNotFound(
                f"{name} does not exist in this account and region ({message}). Check the name "
                "(`pulumi stack output endpointName`) and AWS_REGION."
            )
        if code == "ModelError":
            original_status = response.get("OriginalStatusCode", "?")
            original = str(response.get("OriginalMessage", message))[:500]
            return InvocationFailed(
                f"The model container behind {name} answered HTTP {original_status}: {original}. "
                "See the endpoint's CloudWatch logs (/aws/sagemaker/Endpoints/...)."
            )
        return InvocationFailed(f"Calling {name} failed ({code or type(e).__name__}: {message}).")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpTarget:
    """An mlship service reached over HTTP(S), authenticated with an API key."""

    def __init__(self, base_url: str, timeout: float, api_key: str | None) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EndpointError(
                f"--url {base_url!r} is not an http(s) URL; pass the service's base URL, for "
                "example https://mlship.example.com."
            )
        if api_key and parsed.scheme == "http" and not _is_loopback(parsed.hostname):
            raise EndpointError(
                f"Refusing to send an API key in clear text to {base_url}: use https://, or an "
                "address on this machine (127.0.0.1)."
            )
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + HTTP_ROUTE
        self.timeout = timeout
        self._api_key = api_key

    @property
    def description(self) -> str:
        return f"service {self.base_url}"

    def check(self) -> None:
        """Nothing to check ahead of the first request: its errors say it all."""

    def invoke(self, body: bytes) -> bytes:
        headers = {"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE}
        if self._api_key:
            headers[API_KEY_HEADER] = self._api_key
        # The scheme is checked in __init__: http or https only, never file: or custom ones.
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from e
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError | socket.timeout):
                raise self._timeout() from e
            if isinstance(reason, ConnectionRefusedError):
                raise self._refused() from e
            raise EndpointUnreachable(
                f"Could not reach {self.url} ({reason}). Check the URL and your network."
            ) from e
        except TimeoutError as e:
            raise self._timeout() from e
        except ConnectionRefusedError as e:
            raise self._refused() from e
        except (ConnectionError, OSError) as e:
            raise InvocationFailed(f"The connection to {self.url} failed ({e}).") from e

    def _timeout(self) -> EndpointTimeout:
        return EndpointTimeout(
            f"{self.url} did not answer within {self.timeout:g} s. Check the service's health "
            "(/ping) and load, or raise --timeout."
        )

    def _refused(self) -> EndpointUnreachable:
        return EndpointUnreachable(
            f"Connection refused by {self.base_url}: nothing listens there. Check the URL and "
            "that the service is running (`mlship serve`)."
        )

    def _http_error(self, e: urllib.error.HTTPError) -> EndpointError:
        try:
            detail = e.read()[:500].decode("utf-8", "replace")
        except OSError:
            detail = ""
        if e.code in (401, 403):
            hint = (
                "the key was refused; check that its SHA-256 is in the service's accepted hashes"
                if self._api_key
                else "no API key was sent; put it in the variable named by --api-key-env"
            )
            return CredentialsDenied(f"{self.url} answered HTTP {e.code}: {hint}. {detail}")
        if e.code == 404:
            return EndpointNotFound(
                f"{self.url} answered HTTP 404: is {self.base_url} an mlship service? {detail}"
            )
        return InvocationFailed(f"{self.url} answered HTTP {e.code}: {detail}")
