"""The plan's ``target``: where the service is, how its flags are read and written, which headers every
request carries (``${ENV}`` references resolved when the run starts), and the request mix of the load."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, JsonValue, field_validator

from opslab.canary.strict import Strict, check_env_refs, check_path

Path_ = Annotated[str, AfterValidator(check_path)]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


class RequestSpec(Strict):
    """One kind of request in the load's mix, drawn with probability ``weight / Σ weights``."""

    method: Method = "GET"
    path: Path_
    body: JsonValue = Field(default=None, description="A JSON body (sent for any method but GET and HEAD).")
    weight: float = Field(default=1.0, gt=0, le=1e6)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


class Target(Strict):
    base_url: str = "http://127.0.0.1:8100"
    flags_path: Path_ = "/api/flags"
    flags_method: Literal["POST", "PUT", "PATCH"] = Field(
        default="POST", description="How flags are written (read: GET flags_path)."
    )
    health_path: Path_ = "/api/lab/config"
    request_path: Path_ = "/api/search?q=canary"
    requests: list[RequestSpec] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="A weighted request mix for the load; replaces request_path.",
    )
    headers: dict[str, Annotated[str, AfterValidator(check_env_refs)]] = Field(
        default_factory=dict,
        description="Sent with every request to the target; ${ENV_VAR} is read when the run starts.",
    )
    error_statuses: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list,
        description="Statuses counted as errors besides any 5xx and timeouts (e.g. [429]).",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=600)
    # mode: report — the target runs the A/B itself and serves the seed's mini report.
    report_path: Path_ = "/api/lab/report?mini=1"
    experiment_path: Path_ | None = Field(
        default="/api/lab/run", description="POSTed to start the target's experiment; null: only read"
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or any(c in name for c in " :\r\n\t") or not name.isascii():
                raise ValueError(f"{name!r} is not an HTTP header name")
        return value

    def mix(self) -> list[RequestSpec]:
        """The requests the load sends: the plan's mix, or one GET of ``request_path``."""
        return self.requests or [RequestSpec(method="GET", path=self.request_path)]
