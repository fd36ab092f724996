"""The Sentinel emulator's HTTP surface: Entra sign-in, ARM incidents, Logs Ingestion, control.

The Entra endpoints are the ones msal uses for client credentials: OpenID discovery (endpoints
advertised as ``https://``, as msal requires; a loopback client reaches them over plain http)
and the v2.0 token endpoint. Errors anywhere else carry ARM's body, ``{"error": {...}}``.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from xdrsync.emulator.auth import SignInError, openid_document
from xdrsync.emulator.sentinel.arm import add_arm_routes, json_response
from xdrsync.emulator.sentinel.control import add_control_routes
from xdrsync.emulator.sentinel.errors import ArmError
from xdrsync.emulator.sentinel.gate import SentinelGate
from xdrsync.emulator.sentinel.ingestion import add_ingestion_routes
from xdrsync.emulator.sentinel.service import SentinelEmulator


def _arm_error(error: ArmError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json; charset=utf-8",
        headers=error.headers,
    )


def build_app(emulator: SentinelEmulator) -> FastAPI:
    app = FastAPI(title="xdrsync Microsoft Sentinel emulator", docs_url=None, redoc_url=None)

    @app.exception_handler(ArmError)
    async def arm_error(request: Request, error: ArmError) -> Response:
        return _arm_error(error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        status = HTTPStatus(error.status_code)
        code = status.phrase.replace(" ", "")
        message = str(error.detail) if error.detail else status.phrase
        return _arm_error(ArmError(error.status_code, code, message, error.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        return _arm_error(ArmError(400, "BadRequest", "The request is not valid."))

    # -- Entra ID --------------------------------------------------------------------------------

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def openid_configuration(tenant: str, request: Request) -> Response:
        spec = emulator.sign_in_keys.get(tenant)
        if spec is None:
            return JSONResponse(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
                status_code=400,
            )
        return json_response(openid_document(request.url.netloc, tenant, spec.tenant_id))

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            body = emulator.issuer.issue(tenant, form)
        except SignInError as refused:
            return JSONResponse(refused.body, status_code=refused.status)
        emulator.count("tokens")
        return json_response(body)

    add_arm_routes(app, emulator)
    add_ingestion_routes(app, emulator)
    add_control_routes(app, emulator)
    app.add_middleware(SentinelGate, emulator=emulator, routes=app.router.routes)
    return app
