"""Client families from real User-Agent strings, and /v2/ route parsing."""

import pyarrow as pa
import pytest

from workbench.case import new_connection
from workbench.ingest import derive


@pytest.mark.parametrize(
    "ua, family, version",
    [
        ("docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 "
         "UpstreamClient(Docker-Client/24.0.7 \\(linux\\))", "docker", "24.0.7"),
        ("containerd/v1.7.2", "containerd", "1.7.2"),
        ("cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64", "cri-o", "1.28.1"),
        ("libpod/4.9.3", "podman", "4.9.3"),
        ("Buildah/1.33.2", "buildah", "1.33.2"),
        ("containers/5.29.2 (github.com/containers/image)", "containers-image", "5.29.2"),
        ("skopeo/1.9.3", "skopeo", "1.9.3"),  # as captured from skopeo copy/inspect here
        ("buildkit/v0.12.5", "buildkit", "0.12.5"),
        ("kaniko/v1.19.2", "kaniko", "1.19.2"),
        ("crane/v0.19.0 go-containerregistry/v0.19.0", "crane", "0.19.0"),
        ("go-containerregistry/v0.19.0", "go-containerregistry", "0.19.0"),
        ("kubelet/v1.28.2 (linux/amd64) kubernetes/89a4ea3", "kubelet", "1.28.2"),
        ("kube-probe/1.23", "kube-probe", "1.23"),
        ("Go-http-client/1.1", "go-http-client", "1.1"),
        ("curl/7.88.1", "curl", "7.88.1"),
        ("python-requests/2.31.0", "python-requests", "2.31.0"),
        ("harbor-registry-client", "harbor", None),
        ("GitLab/14.6.0", "gitlab", "14.6.0"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "browser", "5.0"),
        ("something-else", "other", None),
    ],
)
def test_client_family(ua, family, version):
    t = derive.client_lookup(pa.array([ua]))
    assert t.column("client").to_pylist() == [family]
    assert t.column("client_version").to_pylist() == [version]


@pytest.mark.parametrize(
    "uri, route, repo, ref",
    [
        ("/v2/", "base", None, None),
        ("/v2", "base", None, None),
        ("/v2/_catalog?n=10&last=a", "catalog", None, None),
        ("/v2/team/sub/app/manifests/v1", "manifest", "team/sub/app", "v1"),
        ("/v2/a/b/c/d/blobs/sha256:" + "0" * 64, "blob", "a/b/c/d", "sha256:" + "0" * 64),
        ("/v2/library/app/blobs/uploads/", "blob_upload", "library/app", None),
        ("/v2/library/app/blobs/uploads/7d8e9f0a-1b2c-4d3e-9f4a-5b6c7d8e9f0a?_state=x&digest=sha256%3Aabc",
         "blob_upload", "library/app", None),
        ("/v2/library/app/tags/list?n=1&last=a", "tags", "library/app", None),
        ("/v2/group/app/tags/reference/v1.2", "tags", "group/app", "v1.2"),
        ("/v2/library/app/referrers/sha256:" + "1" * 64 + "?artifactType=x", "referrers", "library/app",
         "sha256:" + "1" * 64),
        ("/api/v2.0/projects", "other", None, None),
        ("-", "other", None, None),
    ],
)
def test_routes(uri, route, repo, ref):
    con = new_connection()
    derive.install(con)
    con.execute(
        "CREATE TEMP TABLE _r AS SELECT TIMESTAMPTZ '2026-11-28 06:29:38+00' AS ts, 'registry' AS layer, "
        "NULL AS instance, NULL AS request_id, 'GET' AS method, ? AS uri, '200' AS status, 0.1 AS duration_s, "
        "NULL AS bytes_out, NULL AS bytes_in, '10.0.0.1:5000' AS remote_addr, NULL AS user_agent, "
        "NULL AS error_code, NULL AS error_message, NULL AS error_detail, NULL AS storage_duration_s, "
        "NULL AS upstream_duration_s, NULL AS upstream_status, 1::BIGINT AS line_no", [uri])
    row = derive.finish_requests(con, "_r", "x").to_pylist()[0]
    assert (row["route"], row["repository"], row["reference"]) == (route, repo, ref)
    assert row["remote_ip"] == "10.0.0.1"
