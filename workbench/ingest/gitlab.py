"""GitLab container registry logs (JSON, underscored field names).

Requests are the LabKit access lines (`"msg":"access"`, `duration_ms`, `ttfb_ms`, `written_bytes`, `remote_ip`,
`correlation_id`); a completion line carrying `duration_s` instead of `duration_ms` is read the same way. Every
other line (router info, storage and database messages, errors with `error`) becomes `log_events`.
"""

from __future__ import annotations

from .jsonlog import JsonRequestLog, s


class GitLabRegistry(JsonRequestLog):
    name = "gitlab-registry"
    layer = "gitlab-registry"
    description = "GitLab container registry JSON log (access lines with duration_ms, correlation_id, remote_ip)"
    example = (
        '{"content_type":"","correlation_id":"01FQGNSKVMHQEAVE21KYTJN2P4","duration_ms":62,"host":"localhost:5000",'
        '"level":"info","method":"DELETE","msg":"access","proto":"HTTP/1.1","referrer":"",'
        '"remote_addr":"127.0.0.1:47498","remote_ip":"127.0.0.1","status":202,"system":"http",'
        '"time":"2021-12-22T08:58:15Z","ttfb_ms":62,"uri":"/v2/group/app/tags/reference/v1",'
        '"user_agent":"GitLab/14.6.0","written_bytes":0}'
    )
    markers = ('"time"', '"level"', '"msg"')
    time = s("$.time")
    is_request = (
        f"{s('$.status')} IS NOT NULL AND {s('$.uri')} IS NOT NULL AND "
        f"({s('$.duration_ms')} IS NOT NULL OR {s('$.duration_s')} IS NOT NULL)"
    )
    columns = {
        "request_id": f"coalesce({s('$.correlation_id')}, {s('$.request_id')})",
        "method": s("$.method"),
        "uri": s("$.uri"),
        "status": s("$.status"),
        "duration_s": f"coalesce(TRY_CAST({s('$.duration_s')} AS DOUBLE), TRY_CAST({s('$.duration_ms')} AS DOUBLE) / 1e3)",
        "bytes_out": s("$.written_bytes"),
        "bytes_in": s("$.content_length"),
        "remote_addr": f"coalesce(nullif({s('$.remote_ip')}, ''), {s('$.remote_addr')})",
        "user_agent": s("$.user_agent"),
        "error_code": s("$.err_code"),
        "error_message": s("$.err_message"),
        "error_detail": f"coalesce({s('$.err_detail')}, {s('$.error')})",
        "level": s("$.level"),
        "msg": s("$.msg"),
        "error": s("$.error"),
        "err_code": s("$.err_code"),
        "err_detail": s("$.err_detail"),
        "err_message": s("$.err_message"),
        "repository": f"coalesce({s('$.vars_name')}, {s('$.repository')})",
    }
    drop_from_fields = ("time", "level", "msg")

    def sniff(self, lines: list[str]) -> float:
        # underscored names tell it from distribution's dotted ones
        base = super().sniff(lines)
        if not base or not any(k in ln for ln in lines for k in ('"correlation_id"', '"go_version"', '"duration_ms"')):
            return 0.0
        return base


FORMATS = [GitLabRegistry()]
