"""Config fields are checked, and the entry points answer bad input with one line and status 2.

The entry points run as real subprocesses (``python -m ...``), as a user would start them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from omnir1_jax.config import BridgeSpec, ConfigError, DataSpec, ExperimentConfig, RunSpec, apply_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "override, shown",
    [
        ("run.steps=True", "True"),
        ("run.steps=-5", "-5"),
        ("grpo.beta=1e999", "inf"),
        ("grpo.beta=-1", "-1"),
        ("grpo.temperature=0", "0"),
        ("grpo.temperature=-1", "-1"),
        ("grpo.top_p=2.0", "2.0"),
        ("run.keep_checkpoints=0", "0"),
        ("run.checkpoint_every=-1", "-1"),
        ("bridge.retries=-3", "-3"),
        ("bridge.timeout_s=0", "0"),
        ("data.synthetic_size=(0,0)", "(0, 0)"),
        ("sft.steps=-1", "-1"),
        ("bridge.workers=False", "False"),
        ("data.batch_size=True", "True"),
        ("optim.lr=nan", "nan"),
        ("grpo.max_new_tokens=0", "0"),
        ("run.log_every=0", "0"),
        ("mesh.data=0", "0"),
        ("mesh.decode_gather=1", "1"),
        ("model.remat='fast'", "fast"),
        ("grpo.micro_batches=-1", "-1"),
        ("model.param_dtype='fp16'", "fp16"),
        ("model.export_dtype='int8'", "int8"),
        ("optim.decay='biases'", "biases"),
        ("run.seeds=(1,1)", "(1, 1)"),
        ("run.seeds=(-1,)", "(-1,)"),
    ],
)
def test_bad_override_names_field_and_value(override, shown):
    field = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        apply_overrides(ExperimentConfig(), [override])
    assert field in str(e.value) and shown in str(e.value)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: RunSpec(steps=True), "run.steps"),  # bool is an int subclass: not a step count
        (lambda: RunSpec(steps=2.0), "run.steps"),
        (lambda: BridgeSpec(timeout_s=float("inf")), "bridge.timeout_s"),
        (lambda: DataSpec(synthetic_objects=(3, 2)), "data.synthetic_objects"),
        (lambda: DataSpec(s1_max_pixels=10, s1_min_pixels=20), "data.s1_max_pixels"),
    ],
)
def test_bad_field_in_an_experiment_file_is_a_config_error(build, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


def test_good_overrides_still_apply():
    cfg = apply_overrides(
        ExperimentConfig(),
        [
            "grpo.beta=0.001",
            "bridge.timeout_s=30",
            "run.steps=0",
            "grpo.top_p=1",
            "data.synthetic_size=(56, 84)",
            "run.resume=false",
        ],
    )
    assert cfg.grpo.beta == 0.001 and cfg.bridge.timeout_s == 30.0 and isinstance(cfg.bridge.timeout_s, float)
    assert cfg.run.steps == 0 and cfg.grpo.top_p == 1.0 and cfg.data.synthetic_size == (56, 84)
    assert cfg.run.resume is False
    assert dataclasses.replace(cfg.run, checkpoint_every=0).checkpoint_every == 0  # 0 = never, allowed


def _run(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _assert_one_line(proc: subprocess.CompletedProcess, *names: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-4000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for name in names:
        assert name in err, (name, err)
    return err


def _config_file(tmp_path, body: str) -> str:
    path = tmp_path / "exp.py"
    path.write_text("from omnir1_jax.config import ExperimentConfig, RunSpec\n\n\ndef get_config():\n" + body)
    return str(path)


def test_config_whose_get_config_raises(tmp_path):
    path = _config_file(tmp_path, "    return {}['missing key']\n")
    err = _assert_one_line(_run(["-m", "omnir1_jax.train", "--config", path], str(tmp_path)), path, "KeyError")
    assert err.startswith("python -m omnir1_jax.train: error") or err.startswith("error")


def test_bad_field_in_config_file_through_evaluate(tmp_path):
    path = _config_file(tmp_path, "    return ExperimentConfig(run=RunSpec(keep_checkpoints=0))\n")
    _assert_one_line(
        _run(["-m", "omnir1_jax.evaluate", "--config", path, "--split", "valid"], str(tmp_path)),
        path,
        "run.keep_checkpoints",
        "0",
    )


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = str(blocker / "run")
    path = _config_file(tmp_path, f"    return ExperimentConfig(run=RunSpec(out_dir={out!r}))\n")
    _assert_one_line(_run(["-m", "omnir1_jax.train", "--config", path, "--no-eval"], str(tmp_path)), out)


def test_missing_sft_config_file(tmp_path):
    missing = str(tmp_path / "no_such_experiment.py")
    _assert_one_line(_run(["-m", "omnir1_jax.sft", "--config", missing], str(tmp_path)), missing)


# --------------------------------------------------------------------------------------------- config variants
_TABLE4 = os.path.join(ROOT, "experiments", "table4.py")
_KNOWN = "rk, rk_ra, rk_rg, rk_ra_rg"


def test_a_variant_is_get_config_of_its_name():
    from omnir1_jax.config import load_config, split_variant

    assert split_variant(f"{_TABLE4}:rk_rg") == (_TABLE4, "rk_rg") and split_variant(_TABLE4) == (_TABLE4, None)
    cfg = load_config(f"{_TABLE4}:rk_rg", ["grpo.beta=0.001"])
    w = cfg.grpo.rewards
    assert (cfg.name, cfg.run.out_dir) == ("table4_rk_rg", "runs/table4_rk_rg")
    assert (w.alpha_k, w.alpha_a, w.alpha_g) == (1, 0, 1)
    assert cfg.grpo.beta == 0.001  # overrides apply to the variant


@pytest.mark.parametrize(
    "suffix, says",
    [
        ("", f"has variants: use {_TABLE4}:VARIANT with VARIANT one of {_KNOWN}"),
        (":rk_xx", f"{_TABLE4}:rk_xx: unknown variant 'rk_xx'; known: {_KNOWN}"),
    ],
)
def test_a_file_of_variants_needs_a_known_one(suffix, says):
    from omnir1_jax.config import load_config

    with pytest.raises(ConfigError) as e:
        load_config(_TABLE4 + suffix)
    assert says in str(e.value)


def test_a_variant_of_a_file_without_variants_names_both():
    from omnir1_jax.config import load_config

    path = os.path.join(ROOT, "experiments", "synthetic_cpu.py")
    with pytest.raises(ConfigError) as e:
        load_config(f"{path}:rk")
    assert str(e.value).startswith(f"{path}:rk: ") and "no variants" in str(e.value) and "'rk'" in str(e.value)


def test_get_config_with_a_default_variant_and_its_own_errors(tmp_path):
    """Without ``VARIANTS`` the file decides: ``get_config()`` takes its default, ``get_config(name)`` may raise a
    ConfigError that comes back prefixed with ``FILE:VARIANT``."""
    from omnir1_jax.config import load_config

    path = tmp_path / "exp.py"
    path.write_text(
        "from omnir1_jax.config import ConfigError, ExperimentConfig\n\n\n"
        "def get_config(arg='small'):\n"
        "    if arg not in ('small', 'large'):\n"
        "        raise ConfigError(f'unknown variant {arg!r}; known: small, large')\n"
        "    return ExperimentConfig(name=f'exp_{arg}')\n"
    )
    assert load_config(str(path)).name == "exp_small" and load_config(f"{path}:large").name == "exp_large"
    with pytest.raises(ConfigError, match=f"^{path}:huge: unknown variant 'huge'; known: small, large$"):
        load_config(f"{path}:huge")


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "omnir1_jax.train"],
        ["-m", "omnir1_jax.sft"],
        ["-m", "omnir1_jax.evaluate", "--split", "valid"],
        ["-m", "omnir1_jax.sweep", "--seeds", "0-1"],
        ["-m", "omnir1_jax.compare_turns"],
        ["-m", "omnir1_jax.crossomni.train"],
        ["-m", "omnir1_jax.infer", "--video", "v", "--query", "q", "--policy", "tiny"],
    ],
    ids=lambda a: a[1],
)
def test_every_entry_point_takes_file_colon_variant(tmp_path, args):
    """Each ``--config`` goes through load_config's FILE:VARIANT: an unknown variant is one line naming the known."""
    err = _assert_one_line(_run([*args, "--config", f"{_TABLE4}:rk_xx"], str(tmp_path)), f"{_TABLE4}:rk_xx", _KNOWN)
    assert "unknown variant 'rk_xx'" in err


@pytest.mark.parametrize(
    "address, says",
    [
        ("bogus", "expected ipc://PATH"),
        ("tcp://0.0.0.0:5555", "--allow-remote"),
        ("tcp://127.0.0.1:99999", "99999"),
        ("tcp://127.0.0.1:http", "PORT"),
    ],
)
def test_bad_serve_address(tmp_path, address, says):
    proc = _run(
        ["-m", "sam2_bridge.serve", "--address", address, "--segmenter", "synthetic", "--device", "cpu"], str(tmp_path)
    )
    _assert_one_line(proc, address, says)


def test_serve_ipc_address_in_a_missing_directory(tmp_path):
    address = f"ipc://{tmp_path}/missing/bridge.sock"
    proc = _run(
        ["-m", "sam2_bridge.serve", "--address", address, "--segmenter", "synthetic", "--device", "cpu"], str(tmp_path)
    )
    _assert_one_line(proc, address, "does not exist")


@pytest.mark.parametrize(
    "text, seeds",
    [("0-4", (0, 1, 2, 3, 4)), ("3", (3,)), ("0,2,7", (0, 2, 7)), ("0-2,9", (0, 1, 2, 9)), (" 5 - 6 ", (5, 6))],
)
def test_seed_lists_parse(text, seeds):
    from omnir1_jax.config import parse_seeds

    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["4-0", "a-b", "1,1", "", "-3"])
def test_bad_seed_lists_name_the_text(text):
    from omnir1_jax.config import parse_seeds

    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


def test_seed_config_puts_each_seed_in_its_own_directory():
    from omnir1_jax.config import seed_config

    cfg = ExperimentConfig(run=RunSpec(out_dir="runs/x", seeds=(0, 3)))
    s = seed_config(cfg, 3)
    assert (s.run.seed, s.run.seeds, s.run.out_dir) == (3, (), os.path.join("runs/x", "seed3"))
