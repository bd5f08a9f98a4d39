"""OCI images built by hand: random gzipped tar layers of chosen sizes, an image config and a manifest, with true digests.

Written as an `oci:` layout (oci-layout, index.json, blobs/sha256/…) that skopeo copies as it is, so the lab
knows every blob digest and size the registry will hold before anything is pushed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Blob:
    digest: str
    size: int
    media_type: str


@dataclass
class Image:
    repository: str
    tag: str
    layers: list[Blob]
    config: Blob
    manifest: Blob

    @property
    def blobs(self) -> list[Blob]:
        """Layer and config blobs (what a pull fetches from /blobs/)."""
        return [*self.layers, self.config]

    @property
    def pull_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


@dataclass
class Layout:
    path: Path
    images: dict[str, Image] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        return f"oci:{self.path}:{name}"


def _put(root: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    p = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        p.write_bytes(data)
    return digest


def random_layer(rng: random.Random, size: int, name: str) -> bytes:
    """A tar with one file of `size` random bytes (the tar adds its headers and padding)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


def build_layout(path: Path, spec: dict[str, tuple[str, str, list[int | bytes]]], seed: int = 7) -> Layout:
    """spec: name -> (repository, tag, layers); a layer is a size in bytes or the exact bytes of a shared layer."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layout = Layout(path)
    index = []
    for name, (repo, tag, layer_spec) in spec.items():
        layers, diff_ids = [], []
        for i, ls in enumerate(layer_spec):
            tar = ls if isinstance(ls, bytes) else random_layer(rng, ls, f"{name}/layer{i}.bin")
            # gzip-compressed, as registries hold layers: skopeo pushes them unchanged, digests and all
            data = gzip.compress(tar, compresslevel=1, mtime=0)
            layers.append(Blob(_put(path, data), len(data), LAYER))
            diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        cfg = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2026-11-28T00:00:00Z",
            "config": {"Labels": {"lab.image": name}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }, sort_keys=True).encode()
        config = Blob(_put(path, cfg), len(cfg), CONFIG)
        man = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": LAYER, "digest": b.digest, "size": b.size} for b in layers],
        }, sort_keys=True).encode()
        manifest = Blob(_put(path, man), len(man), MANIFEST)
        layout.images[name] = Image(repo, tag, layers, config, manifest)
        index.append({"mediaType": MANIFEST, "digest": manifest.digest, "size": manifest.size,
                      "annotations": {"org.opencontainers.image.ref.name": name}})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": index}))
    return layout
