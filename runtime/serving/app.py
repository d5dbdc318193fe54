"""The Starlette application: protocols, guards, routing, shadowing, metrics and the log.

Every prediction endpoint goes the same way: the model name and version (404), the track, the
body within `max_body_bytes` (413), JSON (400), the protocol's columns, at most `max_rows`
rows (413), the contract guards (422), then scoring on a bounded thread pool within
`timeout_s` (504). Bad input never reaches a model and never answers 500.

With `admin_token` set, `POST /admin/weights` sets the split by hand and `/admin/rollout`
(GET: state and live evidence; POST `.../advance`, `.../promote`, `.../rollback`) drives the
rollout of `mlc.runtime.serving.rollout`, which also judges the candidate by itself after each
bake when the strategy has a `bake_time`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlc.runtime.serving import protocols
from mlc.runtime.serving.batching import Batcher
from mlc.runtime.serving.guards import Guard, Rejection
from mlc.runtime.serving.metrics import CONTENT_TYPE, ServingMetrics
from mlc.runtime.serving.predlog import PredictionLog
from mlc.runtime.serving.rollout import Rollout, RolloutConflict
from mlc.runtime.serving.routing import Router

if TYPE_CHECKING:
    import pandas as pd
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from mlc.runtime.serving.models import Outputs, Track
    from mlc.runtime.serving.plan import ServingPlan
    from mlc.runtime.serving.reload import Reloader
    from mlc.runtime.serving.workers import SharedMetrics

logger = logging.getLogger("mlc.serving")
NO_VERSION = "none"
"""`version` label of requests no track was chosen for (unknown model or version)."""
SCORING_THREADS = 4
SHADOW_QUEUE = 1000


@dataclass
class _Mirror:
    data: dict[str, list[Any]]
    frame: pd.DataFrame | None
    served: Outputs
    request_id: str
    logged: bool


class Service:
    """The loaded tracks and everything a request needs, shared by the endpoints."""

    def __init__(self, plan: ServingPlan, tracks: dict[str, Track]) -> None:
        self.plan = plan
        self.tracks = tracks
        self.model = plan["model_name"]
        columns = plan["contract"]["columns"]
        self.columns = {f: columns[f] for f in plan["features"]}
        self.guard = Guard(columns, plan["features"])
        self._recast = [
            f
            for f, col in self.columns.items()
            if col["dtype"] in ("category", "datetime")
            or (col["dtype"] == "str" and col.get("allowed"))
        ]
        self.router = Router({t["name"]: t["weight"] for t in plan["tracks"]}, plan["seed"])
        self.metrics = ServingMetrics()
        self.rollout = Rollout(plan, tracks, self.router)
        for track in tracks.values():
            self._profile(track.version)
        self.reloader: Reloader | None = None
        if plan.get("reload_s"):
            from mlc.runtime.serving.reload import Reloader

            self.reloader = Reloader(self, float(plan["reload_s"] or 0))
        # An error ratio needs its numerator before the first error: a series that appears only
        # then leaves rollback rules with no data, which never fire.
        for track in tracks.values():
            self.metrics.errors.inc(0.0, model=self.model, version=track.version)
        self.limits = plan["limits"]
        self.shadow = plan["shadow"]
        self.sticky = (plan["sticky_header"] or "").lower() or None
        self.ready = False
        self._pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="mlc-score")
        self.batcher: Batcher | None = None
        if plan.get("batching"):
            batching = plan["batching"]
            assert batching is not None
            self.batcher = Batcher(
                self._pool,
                self.guard.frame,
                batching["max_batch_size"],
                batching["max_latency_ms"],
                on_queued=lambda t, s: self.metrics.queue.observe(
                    s, model=self.model, version=t.version
                ),
            )
        self.log: PredictionLog | None = None
        if plan["log"] is not None:
            self.log = PredictionLog(
                plan["log"]["path"],
                segment_rows=plan["log"]["segment_rows"],
                segment_seconds=plan["log"]["segment_seconds"],
                on_error=lambda exc: logger.warning("prediction log: %s", exc),
                worker=worker_plan["index"] if (worker_plan := plan.get("worker")) else 0,
            )
        self.shared: SharedMetrics | None = None
        if plan.get("worker"):
            from mlc.runtime.serving.workers import SharedMetrics

            worker = plan["worker"]
            assert worker is not None
            self.shared = SharedMetrics(self.metrics, worker["metrics_dir"], worker["index"])
        self._mirror_queue: queue.Queue[_Mirror | None] = queue.Queue(SHADOW_QUEUE)
        self._mirror_thread: threading.Thread | None = None
        if self.shadow is not None:
            self._mirror_thread = threading.Thread(
                target=self._mirror_loop, name="mlc-shadow", daemon=True
            )
            self._mirror_thread.start()

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Drain the shadow queue, then flush the log: nothing accepted is lost."""
        self.ready = False
        if self.reloader is not None:
            self.reloader.stop()
        if self.shared is not None:
            self.shared.stop()
        if self._mirror_thread is not None:
            self._mirror_queue.put(None)
            self._mirror_thread.join()
        self._pool.shutdown(wait=True)
        if self.log is not None:
            self.log.close()

    # -- tracks ----------------------------------------------------------------------------
    def _profile(self, version: str) -> None:
        if self.rollout.wants_drift and version not in self.rollout.profiles:
            from mlc.runtime.serving.models import reference_profile

            found = reference_profile(self.model, version, self.plan["tracking_uri"])
            if found is not None:
                self.rollout.profiles[version] = found

    def swap(self, name: str, track: Track) -> None:
        """Serve `track` under `name` from now on (requests already routed keep the old one)."""
        self._profile(track.version)
        self.metrics.errors.inc(0.0, model=self.model, version=track.version)
        self.tracks[name] = track
        self.rollout.versions[name] = track.version

    def versions(self) -> list[str]:
        return sorted({t.version for t in self.tracks.values()}, key=lambda v: (len(v), v))

    def by_version(self, version: str) -> Track | None:
        return next((t for t in self.tracks.values() if t.version == version), None)

    def pick(self, request: Request, version: str | None) -> Track:
        if version is not None:
            track = self.by_version(version)
            if track is None:
                raise Rejection(
                    404,
                    f"model '{self.model}' has no served version '{version}'; served: "
                    + ", ".join(self.versions()),
                    "version",
                )
            return track
        if self.shadow is not None:
            return self.tracks[self.shadow["track"]]
        key = request.headers.get(self.sticky) if self.sticky else None
        return self.tracks[self.router.choose(key)]

    # -- logging and shadowing -------------------------------------------------------------
    def _rows(
        self,
        data: dict[str, list[Any]],
        frame: pd.DataFrame | None,
        out: Outputs,
        track: Track,
        request_id: str,
        latency_ms: float,
        shadow: bool,
    ) -> list[dict[str, Any]]:
        """Log rows from the request's JSON values (already plain); run on the log's writer."""
        import pandas as pd

        now = time.time()
        inputs = {name: data[name] for name in self.guard.features}
        if self._recast and frame is None:
            frame = self.guard.frame(data)
        for name in self._recast:
            assert frame is not None
            # The contract maps these (declared category texts, timestamps): log what was scored.
            inputs[name] = [None if pd.isna(v) else v for v in frame[name].tolist()]
        names = list(inputs)
        rows = []
        for i, values in enumerate(zip(*inputs.values(), strict=True)):
            row: dict[str, Any] = {
                "request_id": request_id,
                "row": i,
                "time": now,
                "track": track.name,
                "model_version": track.version,
                "shadow": shadow,
                "latency_ms": latency_ms,
                **dict(zip(names, values, strict=True)),
            }
            if out.label is not None and out.proba is not None:
                row["label"] = out.label[i]
                row["probabilities"] = out.proba[i].tolist()
            else:
                row["prediction"] = (out.prediction or [])[i]
            rows.append(row)
        return rows

    def _mirror_loop(self) -> None:
        assert self.shadow is not None
        mirror = self.tracks[self.shadow["mirror"]]
        while True:
            item = self._mirror_queue.get()
            if item is None:
                return
            start = time.perf_counter()
            try:
                frame = item.frame if item.frame is not None else self.guard.frame(item.data)
                got = mirror.score(frame)
            except Exception as exc:  # the mirror's failures never reach the caller
                logger.warning("shadow track '%s' failed: %s", mirror.name, exc)
                continue
            latency = (time.perf_counter() - start) * 1000
            served, mine = item.served.values(), got.values()
            differ = sum(1 for a, b in zip(served, mine, strict=True) if not _same(a, b))
            if differ:
                self.metrics.disagreements.inc(differ, model=self.model)
            if item.logged and self.log is not None:
                self.log.append(
                    self._rows(item.data, frame, got, mirror, item.request_id, latency, shadow=True)
                )

    # -- scoring ---------------------------------------------------------------------------
    async def score(
        self, track: Track, data: dict[str, list[Any]]
    ) -> tuple[pd.DataFrame | None, Outputs]:
        """The checked columns typed and scored on the pool: the event loop only parses, and
        scores one row itself where every step of the track's row path is replayed (tens of
        microseconds: less than the hop to a pool thread)."""
        submitted = time.perf_counter()
        one = len(next(iter(data.values()), ())) == 1

        def one_row() -> Outputs | None:
            if track.row_fn is None or not one:
                return None
            row = self.guard.row(data)
            if row is None:
                return None
            try:
                return track.row_fn(row)
            except Exception:  # the batch path answers, or says what failed
                return None

        def run() -> tuple[pd.DataFrame | None, Outputs]:
            self.metrics.queue.observe(
                time.perf_counter() - submitted, model=self.model, version=track.version
            )
            got = one_row()
            if got is not None:
                return None, got  # the frame is built off the request path if needed
            frame = self.guard.frame(data)
            return frame, track.score(frame)

        if track.row_inline and self.batcher is None and one:
            got = one_row()
            if got is not None:
                self.metrics.queue.observe(0.0, model=self.model, version=track.version)
                return None, got
        loop = asyncio.get_running_loop()
        if self.batcher is not None:
            rows = len(next(iter(data.values()), []))
            future: Any = self.batcher.score(track, data, rows)
        else:
            future = loop.run_in_executor(self._pool, run)
        try:
            return await asyncio.wait_for(future, timeout=self.limits["timeout_s"])
        except TimeoutError:
            raise Rejection(
                504,
                f"track '{track.name}' (v{track.version}) did not answer within "
                f"{self.limits['timeout_s']:g} s",
                "timeout",
            ) from None

    async def body(self, request: Request) -> bytes:
        limit = self.limits["max_body_bytes"]
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Rejection(413, f"the body has {declared} bytes, over the {limit}", "body_size")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Rejection(413, f"the body is over the {limit} bytes allowed", "body_size")
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(
        self,
        request: Request,
        name: str,
        version: str | None,
        parse: Callable[[Any], tuple[dict[str, list[Any]], int, str | None]],
        answer: Callable[[Outputs, Track, int, str], dict[str, Any]],
    ) -> Response:
        start = time.perf_counter()
        track: Track | None = None
        try:
            if name != self.model:
                raise Rejection(
                    404, f"no model '{name}' here; this server serves '{self.model}'", "model"
                )
            track = self.pick(request, version)
            doc = protocols.parse_json(await self.body(request))
            data, rows, given_id = parse(doc)
            if rows == 0:
                raise Rejection(400, "the request holds no rows", "rows")
            if rows > self.limits["max_rows"]:
                raise Rejection(
                    413, f"{rows} rows, over the {self.limits['max_rows']} allowed", "rows"
                )
            self.guard.check(data, rows)
            request_id = given_id or request.headers.get("x-request-id") or uuid.uuid4().hex
            try:
                frame, out = await self.score(track, data)
            except Rejection:
                raise
            except Exception as exc:  # a model failing on checked rows is a server error
                self.metrics.errors.inc(model=self.model, version=track.version)
                logger.error("track '%s' failed: %s", track.name, exc)
                return self._reply(
                    {"error": f"track '{track.name}' (v{track.version}) failed to score: {exc}"},
                    500,
                    track,
                    start,
                )
            latency_ms = (time.perf_counter() - start) * 1000
            pair = self.rollout.pair
            if self.rollout.wants_drift and pair is not None and track.name == pair.candidate:
                names = list(data)
                self.rollout.window.keep_rows(
                    [
                        dict(zip(names, values, strict=True))
                        for values in zip(*data.values(), strict=True)
                    ]
                )
            for label in out.label or []:
                self.metrics.predictions.inc(
                    1.0, model=self.model, version=track.version, **{"class": str(label)}
                )
            sample = self.plan["log"]["sample"] if self.plan["log"] is not None else 0.0
            logged = self.log is not None and self.router.draw() < sample
            if logged and self.log is not None:
                chosen = track  # narrowed here; a lambda would see `Track | None`
                self.log.append_later(
                    lambda: self._rows(data, frame, out, chosen, request_id, latency_ms, False)
                )
            if (
                self.shadow is not None
                and track.name == self.shadow["track"]
                and self.router.draw() * 100 < self.shadow["percent"]
            ):
                with contextlib.suppress(queue.Full):
                    self._mirror_queue.put_nowait(_Mirror(data, frame, out, request_id, logged))
            return self._reply(answer(out, track, rows, request_id), 200, track, start)
        except Rejection as rejection:
            code = rejection.status
            if code in (400, 413, 422):
                self.metrics.rejections.inc(model=self.model, rule=rejection.rule)
            if code >= 500 and track is not None:
                self.metrics.errors.inc(model=self.model, version=track.version)
            return self._reply(rejection.body(), code, track, start)

    def _reply(self, doc: dict[str, Any], code: int, track: Track | None, start: float) -> Response:
        from starlette.responses import JSONResponse

        version = track.version if track is not None else NO_VERSION
        seconds = time.perf_counter() - start
        self.metrics.requests.inc(model=self.model, version=version, code=str(code))
        self.metrics.duration.observe(seconds, model=self.model, version=version)
        if track is not None:
            self.rollout.observe(version, code, seconds)
        headers = {}
        if track is not None:
            headers = {"x-mlc-track": track.name, "x-mlc-model-version": track.version}
        return JSONResponse(doc, status_code=code, headers=headers)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def build_app(service: Service) -> Starlette:
    """The ASGI application over a loaded `Service`."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    model = service.model

    def _v2(rows_doc: Any) -> tuple[dict[str, list[Any]], int, str | None]:
        parsed: tuple[dict[str, list[Any]], int, str | None]
        parsed = protocols.v2_inputs(rows_doc, service.columns)
        return parsed

    def _v2_answer(out: Outputs, track: Track, rows: int, request_id: str) -> dict[str, Any]:
        return {
            "model_name": model,
            "model_version": track.version,
            "id": request_id,
            "parameters": {"track": track.name},
            "outputs": protocols.v2_outputs(out, track, rows),
        }

    def _v1(doc: Any) -> tuple[dict[str, list[Any]], int, str | None]:
        return (*protocols.v1_inputs(doc, service.guard.features), None)

    def _mlflow(doc: Any) -> tuple[dict[str, list[Any]], int, str | None]:
        return (*protocols.mlflow_inputs(doc), None)

    def _simple(out: Outputs, track: Track, rows: int, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = protocols.simple_outputs(out)
        return answer

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    async def server_meta(request: Request) -> Response:
        return JSONResponse({"name": "mlc", "version": "1", "extensions": []})

    def _known(request: Request) -> tuple[str | None, Response | None]:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != model:
            return None, JSONResponse({"error": f"no model '{name}' here"}, status_code=404)
        if version is not None and service.by_version(version) is None:
            return None, JSONResponse(
                {"error": f"model '{name}' has no served version '{version}'"}, status_code=404
            )
        return version, None

    async def model_meta(request: Request) -> Response:
        version, missing = _known(request)
        if missing is not None:
            return missing
        versions = [version] if version else service.versions()
        classes = next(iter(service.tracks.values())).classes
        return JSONResponse(
            protocols.metadata(model, versions, service.columns, service.guard.features, classes)
        )

    async def model_ready(request: Request) -> Response:
        _, missing = _known(request)
        if missing is not None:
            return missing
        return JSONResponse(
            {"name": model, "ready": service.ready}, status_code=200 if service.ready else 503
        )

    async def v2_infer(request: Request) -> Response:
        p = request.path_params
        return await service.predict(request, p["name"], p.get("version"), _v2, _v2_answer)

    async def v1_predict(request: Request) -> Response:
        return await service.predict(request, request.path_params["name"], None, _v1, _simple)

    async def invocations(request: Request) -> Response:
        return await service.predict(request, model, None, _mlflow, _simple)

    async def metrics(request: Request) -> Response:
        others = service.shared.others() if service.shared is not None else []
        return PlainTextResponse(service.metrics.render(others), media_type=CONTENT_TYPE)

    def _refused(request: Request) -> Response | None:
        token = service.plan["admin_token"]
        if not token:
            return JSONResponse({"error": "the admin endpoint is disabled"}, status_code=404)
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401)
        return None

    async def admin_weights(request: Request) -> Response:
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            doc = protocols.parse_json(await service.body(request))
            weights = doc.get("weights") if isinstance(doc, dict) else None
            if not isinstance(weights, dict):
                raise Rejection(400, 'the body needs {"weights": {track: weight}}', "json")
            service.router.set_weights(weights)
        except Rejection as rejection:
            return JSONResponse(rejection.body(), status_code=rejection.status)
        logger.warning("weights set to %s", service.router.weights)
        return JSONResponse({"weights": service.router.weights})

    async def rollout_status(request: Request) -> Response:
        refused = _refused(request)
        if refused is not None:
            return refused
        doc = await asyncio.to_thread(service.rollout.status)
        if service.reloader is not None:
            doc["reload"] = service.reloader.status()
        return JSONResponse(doc)

    def rollout_action(action: str) -> Callable[[Request], Any]:
        async def act(request: Request) -> Response:
            refused = _refused(request)
            if refused is not None:
                return refused
            try:
                # the registry and the audit chain are files and a database: off the loop
                record = await asyncio.to_thread(service.rollout.decide, action)
            except RolloutConflict as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            failed = record["decision"].endswith("_failed")
            return JSONResponse(
                {"decision": record, "status": await asyncio.to_thread(service.rollout.status)},
                status_code=502 if failed else 200,
            )

        return act

    async def ticker() -> None:
        while True:
            await asyncio.sleep(service.rollout.tick_s)
            try:
                await asyncio.to_thread(service.rollout.tick)
            except Exception:  # one bad judgement must not end automatic rollouts
                logger.exception("rollout: the judgement failed")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.ready = True
        if service.reloader is not None:
            service.reloader.start()
        task = asyncio.create_task(ticker()) if service.rollout.auto else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            service.close()

    routes = [
        Route("/v2", server_meta),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_meta),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}", model_meta),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
        Route("/v1/models/{name}:predict", v1_predict, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/admin/weights", admin_weights, methods=["POST"]),
        Route("/admin/rollout", rollout_status),
        *(
            Route(f"/admin/rollout/{action}", rollout_action(action), methods=["POST"])
            for action in ("advance", "promote", "rollback")
        ),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
