"""The Starlette application: OGC API - Processes - Part 1: Core 1.0 over the job store.

One module per resource (:mod:`.landing`, :mod:`.process_routes`, :mod:`.job_routes`,
:mod:`.result_routes`, the dashboard, health, metrics and schedules); this one assembles them
with the middleware every response goes through.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings, get_settings
from .dashboard import dashboard_routes
from .error_handlers import EXCEPTION_HANDLERS
from .health import health_routes
from .job_routes import Jobs
from .landing import Landing
from .metrics import metrics_routes
from .process_routes import Processes
from .processes import Catalogue, default_catalogue
from .result_routes import Results
from .schedules import schedules_routes
from .store import JobAccess

#: Headers of every response: never sniff content types, and never send a page's URL (which
#: may hold a job id, the key to a result) to another site.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None,
    *,
    catalogue: Catalogue | None = None,
    access: JobAccess | None = None,
) -> Starlette:
    """Build the ASGI application.

    Parameters:
      settings: The configuration; read from the environment by default.
      catalogue: The processes offered; by default every actor of the actor catalogue in the
        job store's database.
      access: The job store; one on ``GEOTASKS_DATABASE_URL`` by default.

    Returns:
      Starlette: the app, ready for uvicorn.

    Raises:
      ConfigurationError: when no database is configured.
    """
    settings = settings or get_settings()
    access = access or JobAccess.from_settings(settings)
    catalogue = catalogue or default_catalogue(access.database)
    landing = Landing(settings, catalogue, access)
    results = Results(settings, catalogue, access)
    processes = Processes(settings, catalogue, access, results)
    jobs = Jobs(settings, catalogue, access)
    routes = [
        *landing.routes(),
        *processes.routes(),
        *jobs.routes(),
        *results.routes(),
        *dashboard_routes(landing),
        *health_routes(settings),
        *metrics_routes(settings, landing.require_token),
        *schedules_routes(settings, landing.require_token),
        Mount("/static", StaticFiles(packages=[("geotasks.http", "static")]), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if settings.api_cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.api_cors_origins),
                allow_methods=["GET", "HEAD", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Prefer", "Range", "Accept"],
                expose_headers=[
                    "Location",
                    "Content-Range",
                    "Accept-Ranges",
                    "Content-Length",
                    "ETag",
                    "Link",
                    "Preference-Applied",
                ],
                max_age=600,
            )
        )
    # Level 5 compresses GeoJSON nearly as well as 9 at a fraction of the CPU.
    middleware.append(Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.processes = processes
    return app
