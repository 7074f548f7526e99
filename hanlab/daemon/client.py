"""An async client of a daemon's control API (issue 9, items 3 and 4), for the CLI and
for other tools: the methods mirror :class:`~hanlab.runtime.service.LabService` and return
the same JSON shapes, and refusals raise the same exceptions.

    async with ApiClient("http://127.0.0.1:8470", token) as client:
        job = await client.submit({"rig": "emulated-dual-band", "scenario": "meter-reading"})

Errors: 404 → :class:`NotFoundError`, 409 → :class:`RigBusyError`, 422 →
:class:`JobRefusedError` (with the server's ``field``), 401/403 and an unreachable daemon →
:class:`HanlabError` saying what to do. Every request has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import aiohttp

from hanlab.daemon.openapi import CAPTURE_PATTERN
from hanlab.daemon.statefile import DaemonInfo
from hanlab.daemon.tokens import TokenStore
from hanlab.errors import BadInputError, HanlabError
from hanlab.runtime.service import JobRefusedError, NotFoundError, RigBusyError

__all__ = ["ApiClient"]

Json = dict[str, Any]

DEFAULT_TIMEOUT_S: Final = 10.0
_CHUNK_BYTES: Final = 256 * 1024
_START_HINT: Final = ("start it with `hanlab up`, check the URL, or run the command without "
                      "a daemon (in-process)")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _download_target(dest: Path, name: str) -> Path:
    """``dest/name`` if ``dest`` is a folder, else ``dest`` (one local stat)."""
    return dest / name if dest.is_dir() else dest


class ApiClient:
    """A client of one daemon's control API.

    Args:
        url: the daemon's control URL, e.g. ``http://127.0.0.1:8470`` (state file, MQTT
            ``status`` or ``lab()["control_url"]``).
        token: a bearer token of the daemon's tokens file (viewer to read, operator to
            submit and cancel), or ``None`` (only :meth:`health` works then).
        ca_file: for ``https``: verify the daemon's certificate against this PEM file (a
            CA or the self-signed certificate itself); default the system store.
        timeout_s: the limit of every request (s); downloads: per read of the body.

    Use as ``async with ApiClient(url, token) as client:``.
    """

    def __init__(self, url: str, token: str | None, *, ca_file: Path | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ApiClient({self.url!r})"  # never the token

    @classmethod
    def for_daemon(cls, daemon: DaemonInfo, role: str = "viewer", *,
                   ca_file: Path | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> ApiClient:
        """A client of a daemon found by :func:`hanlab.daemon.statefile.find_daemons`,
        with a token of ``role`` from its tokens file.

        Raises:
            BadInputError: the daemon's tokens file cannot be read (not this user's?).
            HanlabError: it has no token for ``role``.
        """
        if daemon.tokens_file is None:
            raise HanlabError(f"the daemon of lab {daemon.lab} (pid {daemon.pid}) names no "
                              "tokens file", hint="give the token yourself")
        token = TokenStore.load(daemon.tokens_file).token_for(role)
        return cls(daemon.url, token, ca_file=ca_file, timeout_s=timeout_s)

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            context: ssl.SSLContext | bool = True
            if self.url.startswith("https:"):
                try:
                    context = ssl.create_default_context(
                        cafile=os.fspath(self.ca_file) if self.ca_file else None)
                except (OSError, ssl.SSLError) as error:
                    raise BadInputError(f"cannot read the CA file {self.ca_file}: {error}"
                                        ) from error
            headers = {"Accept": "application/json"}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = aiohttp.ClientSession(
                headers=headers, connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    # --- transport --------------------------------------------------------------------

    def _unreachable(self, error: BaseException) -> HanlabError:
        if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return HanlabError(f"the TLS certificate of the hanlab daemon at {self.url} "
                               f"cannot be verified: {error}",
                               hint="give the daemon's certificate or CA file (ca_file)")
        if isinstance(error, TimeoutError):
            return HanlabError(f"the hanlab daemon at {self.url} did not answer within "
                               f"{self.timeout_s:g} s", hint="is it overloaded or stuck?")
        return HanlabError(f"no hanlab daemon answers at {self.url}: {error}",
                           hint=_START_HINT)

    def _refusal(self, status: int, body: bytes) -> HanlabError:
        message, field = f"HTTP {status}", None
        try:
            error = json.loads(body)["error"]
            message = str(error["message"])
            field = error.get("field")
        except (ValueError, KeyError, TypeError):
            if status < 500:
                return HanlabError(f"{self.url} answered HTTP {status} without a hanlab "
                                   "error: is it a hanlab daemon?")
        if status == 401:
            return HanlabError(f"the hanlab daemon at {self.url} refused the token: "
                               f"{message}",
                               hint="use a token of the daemon's API tokens file (viewer "
                                    "to read, operator to submit and cancel jobs)")
        if status == 403:
            return HanlabError(f"the hanlab daemon at {self.url} refused: {message}",
                               hint="use the operator token of the daemon's API tokens file")
        if status == 404:
            return NotFoundError(message)
        if status == 409:
            return RigBusyError(message)
        if status == 422:
            field = field if isinstance(field, str) else "request"
            prefix = f"{field}: "
            return JobRefusedError(field, message.removeprefix(prefix))
        if status < 500:
            return BadInputError(f"the hanlab daemon at {self.url} refused: {message}")
        return HanlabError(f"the hanlab daemon at {self.url} failed: {message}",
                           hint="see the daemon's log")

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: Json | None = None) -> Any:
        session = self._open()
        try:
            async with session.request(method, self.url + path, params=params,
                                       json=body) as response:
                data = await response.read()
                if response.status >= 400:
                    raise self._refusal(response.status, data)
        except HanlabError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise self._unreachable(error) from error
        try:
            return json.loads(data)
        except ValueError:
            raise HanlabError(f"{self.url}{path} did not answer JSON: is it a hanlab "
                              "daemon?") from None

    async def _get(self, path: str, **params: str | int | None) -> Any:
        query = {k: str(v) for k, v in params.items() if v is not None}
        return await self._call("GET", path, params=query or None)

    # --- the API --------------------------------------------------------------------

    async def health(self) -> Json:
        """``{"ok": true}`` when the daemon answers (no token needed)."""
        result: Json = await self._get("/api/v1/health")
        return result

    async def openapi(self) -> Json:
        """The daemon's OpenAPI document."""
        result: Json = await self._get("/api/openapi.json")
        return result

    async def lab(self) -> Json:
        """The lab (``LabService.lab``)."""
        result: Json = await self._get("/api/v1/lab")
        return result

    async def rigs(self) -> list[Json]:
        """Every rig with its status (``LabService.rigs``)."""
        result: list[Json] = await self._get("/api/v1/rigs")
        return result

    async def rig(self, name: str) -> Json:
        """One rig. Raises NotFoundError."""
        result: Json = await self._get(f"/api/v1/rigs/{_segment(name)}")
        return result

    async def sniffers(self, rig: str) -> list[Json]:
        """The rig's sniffers. Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/rigs/{_segment(rig)}/sniffers")
        return result

    async def events(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest source events (1 ≤ limit ≤ 1000). Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/rigs/{_segment(rig)}/events",
                                             limit=limit)
        return result

    async def exchanges(self, rig: str, limit: int = 100) -> list[Json]:
        """The rig's latest exchanges (1 ≤ limit ≤ 1000). Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/rigs/{_segment(rig)}/exchanges",
                                             limit=limit)
        return result

    async def timings(self, rig: str) -> Json:
        """The rig's timing summary. Raises NotFoundError."""
        result: Json = await self._get(f"/api/v1/rigs/{_segment(rig)}/timings")
        return result

    async def dutycycle(self, rig: str) -> Json:
        """The rig's DIT.8 duty-cycle and agility state. Raises NotFoundError."""
        result: Json = await self._get(f"/api/v1/rigs/{_segment(rig)}/dutycycle")
        return result

    async def captures(self, rig: str) -> list[Json]:
        """The rig's capture files. Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/rigs/{_segment(rig)}/captures")
        return result

    async def download_capture(self, rig: str, name: str, dest: Path) -> Path:
        """Download one capture file to ``dest`` (a folder: ``dest/name``); the path
        written. The file appears whole or not at all (written as ``*.part``, renamed).

        Raises:
            NotFoundError: no such rig or capture file (or a name that is not a plain
                file name).
            HanlabError: the daemon cannot be reached, or the transfer broke.
        """
        if not re.match(CAPTURE_PATTERN, name) or ".." in name:
            raise NotFoundError(f"no capture file {name!r}: not a capture file name")
        target = _download_target(dest, name)
        partial = target.with_name(target.name + ".part")
        session = self._open()
        path = f"/api/v1/rigs/{_segment(rig)}/captures/{_segment(name)}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s,
                                        sock_read=self.timeout_s)
        try:
            async with session.get(self.url + path, timeout=timeout) as response:
                if response.status >= 400:
                    raise self._refusal(response.status, await response.read())
                with partial.open("wb") as file:
                    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                        file.write(chunk)
            partial.replace(target)
        except HanlabError:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        except (aiohttp.ClientError, TimeoutError) as error:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise self._unreachable(error) from error
        except OSError as error:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise HanlabError(f"cannot write {target}: {error}") from error
        return target

    async def submit(self, spec: Json) -> Json:
        """Queue a job (``LabService.submit``); the new JOB.

        Raises:
            JobRefusedError: a refused field (``.field``).
            RigBusyError: the rig cannot take it now.
            HanlabError: the token is not an operator's.
        """
        result: Json = await self._call("POST", "/api/v1/jobs", body=spec)
        return result

    async def jobs(self, rig: str | None = None, state: str | None = None,
                   limit: int = 100) -> list[Json]:
        """Job summaries, newest first."""
        result: list[Json] = await self._get("/api/v1/jobs", rig=rig, state=state,
                                             limit=limit)
        return result

    async def job(self, job_id: str) -> Json:
        """One job in full. Raises NotFoundError."""
        result: Json = await self._get(f"/api/v1/jobs/{_segment(job_id)}")
        return result

    async def job_steps(self, job_id: str) -> list[Json]:
        """The job's steps. Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/jobs/{_segment(job_id)}/steps")
        return result

    async def job_exchanges(self, job_id: str) -> list[Json]:
        """The job's exchanges. Raises NotFoundError."""
        result: list[Json] = await self._get(f"/api/v1/jobs/{_segment(job_id)}/exchanges")
        return result

    async def job_timings(self, job_id: str) -> Json:
        """The job's timing summary. Raises NotFoundError."""
        result: Json = await self._get(f"/api/v1/jobs/{_segment(job_id)}/timings")
        return result

    async def cancel(self, job_id: str) -> Json:
        """Cancel a job; the JOB. Raises NotFoundError; RigBusyError if it ended."""
        result: Json = await self._call("POST", f"/api/v1/jobs/{_segment(job_id)}/cancel")
        return result

    async def rerun(self, job_id: str) -> Json:
        """Queue a job again with its spec; the new JOB. Raises NotFoundError;
        RigBusyError as :meth:`submit`."""
        result: Json = await self._call("POST", f"/api/v1/jobs/{_segment(job_id)}/rerun")
        return result

    async def scenarios(self) -> list[Json]:
        """The scenario library."""
        result: list[Json] = await self._get("/api/v1/scenarios")
        return result
