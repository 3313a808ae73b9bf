"""Training's file-system side effects under several processes: two real ranks (gloo on CPU, as `accelerate launch`
starts them) prepare the same work dirs; only the main process may touch them, the other waiting for it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROUNDS = 12

# One rank. Rank 1 is slowed before every call, so a rank that acts on its own (no barrier) finds rank 0's finished
# work dir and stamps it again, or, when it comes first, removes the dir rank 0 is writing into; each stamp write is
# slowed too, to widen that window. Every write, every resumed checkpoint and every error is recorded per rank.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    import medbridge.io
    from medbridge.train import common

    rank, base = int(os.environ["RANK"]), Path(sys.argv[1])
    real_write = medbridge.io.write_text
    writes, errors, resumed = [], [], []

    def slow_write(path, text):
        writes.append(str(Path(path).parent))
        time.sleep(0.02)
        real_write(path, text)

    medbridge.io.write_text = slow_write
    for i in range({rounds}):
        fingerprint = {{"round": i}}
        for kind in ("fresh", "stale", "resume"):
            if rank == 1:
                time.sleep(0.03)
            try:
                work = common.prepare_work_dir(base / f"{{kind}}{{i}}", lambda: fingerprint)
                resumed.append(common.last_checkpoint(work))
            except Exception as e:
                errors.append(f"{{kind}}{{i}}: {{type(e).__name__}}: {{e}}")
    failure = None
    try:  # a failure on the main process reaches every rank instead of leaving the others waiting
        common.prepare_work_dir(base / "a-file" / "work", lambda: {{}})
        errors.append("no error for a work dir under a file")
    except Exception as e:
        failure = type(e).__name__
    Path(base, f"rank{{rank}}.json").write_text(json.dumps(
        {{"writes": writes, "errors": errors, "resumed": resumed, "failure": failure}}))
    common.end_processes()  # as the training verbs end: without it gloo's threads may abort the exit (SIGABRT)
""").format(rounds=ROUNDS)


def _stamp(fingerprint: dict) -> str:
    from medbridge.config import config_hash

    return config_hash(fingerprint) + "\n"


def _layout(base: Path) -> None:
    """Per round: a fresh dir; a stale one (another config's stamp and checkpoint); one to resume (its own stamp, a
    complete checkpoint-2 and a checkpoint-3 whose save was killed)."""
    (base / "a-file").write_text("")
    for i in range(ROUNDS):
        stale = base / f"stale{i}"
        (stale / "checkpoint-5").mkdir(parents=True)
        (stale / "checkpoint-5" / "trainer_state.json").write_text("{}")
        (stale / "medbridge-fingerprint.txt").write_text(_stamp({"round": -1}))
        resume = base / f"resume{i}"
        for step, files in ((2, ["model.safetensors", "trainer_state.json"]), (3, ["model.safetensors"])):
            (resume / f"checkpoint-{step}").mkdir(parents=True)
            for name in files:
                (resume / f"checkpoint-{step}" / name).write_text("{}")
        (resume / "medbridge-fingerprint.txt").write_text(_stamp({"round": i}))


def test_only_the_main_process_prepares_the_work_dir(tmp_path):
    from medbridge.train.launch import free_port

    _layout(tmp_path)
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["errors"] == [] and ranks[1]["errors"] == []
    assert ranks[1]["writes"] == []  # the other rank never writes a stamp
    assert sorted(ranks[0]["writes"]) == sorted(
        str(tmp_path / f"{k}{i}") for i in range(ROUNDS) for k in ("fresh", "stale", "resume")
    )
    want = [c for i in range(ROUNDS) for c in (None, None, str(tmp_path / f"resume{i}" / "checkpoint-2"))]
    assert ranks[0]["resumed"] == want and ranks[1]["resumed"] == want  # both ranks resume the same checkpoint
    for i in range(ROUNDS):
        for kind in ("fresh", "stale", "resume"):
            assert (tmp_path / f"{kind}{i}" / "medbridge-fingerprint.txt").read_text() == _stamp({"round": i})
        assert not (tmp_path / f"stale{i}" / "checkpoint-5").exists()  # another config's checkpoints went
        assert (tmp_path / f"resume{i}" / "checkpoint-2" / "model.safetensors").exists()
        assert not (tmp_path / f"resume{i}" / "checkpoint-3").exists()
    assert ranks[0]["failure"] in ("FileExistsError", "NotADirectoryError")  # the main process's own error
    assert ranks[1]["failure"] == "MedbridgeError"  # told, not left waiting
