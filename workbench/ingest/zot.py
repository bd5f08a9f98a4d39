"""zot registry logs (zerolog JSON: `message`, not `msg`).

Requests are the session logger's `"message":"HTTP API"` lines: `clientIP` (with port), `method`, `path` (with
the query string), `statusCode`, `latency` (a Go duration string), `bodySize`, and the request `headers`
(User-Agent inside, Authorization masked). Every other line becomes `log_events`.
"""

from __future__ import annotations

from .jsonlog import JsonRequestLog, s


class ZotLog(JsonRequestLog):
    name = "zot"
    layer = "zot"
    description = "zot registry JSON log (zerolog; requests are \"message\":\"HTTP API\" lines)"
    example = (
        '{"time":"2026-09-27T14:54:53.327480622Z","level":"info","message":"HTTP API","module":"http",'
        '"component":"session","clientIP":"127.0.0.1:45590","method":"GET","path":"/v2/","statusCode":401,'
        '"latency":"0s","bodySize":253,"headers":{"Accept":["application/vnd.oci.image.manifest.v1+json"],'
        '"User-Agent":["Go-http-client/1.1"]}}'
    )
    markers = ('"message"', '"level"')
    time = s("$.time")
    is_request = f"{s('$.message')} = 'HTTP API' AND {s('$.statusCode')} IS NOT NULL"
    columns = {
        "method": s("$.method"),
        "uri": s("$.path"),
        "status": s("$.statusCode"),
        "duration_s": f"go_dur({s('$.latency')})",
        "bytes_out": s("$.bodySize"),
        "bytes_in": s('$.headers."Content-Length"[0]'),
        "remote_addr": s("$.clientIP"),
        "user_agent": s('$.headers."User-Agent"[0]'),
        "level": s("$.level"),
        "msg": s("$.message"),
        "error": s("$.error"),
        "repository": s("$.repository"),
    }
    drop_from_fields = ("time", "level", "message")


FORMATS = [ZotLog()]
