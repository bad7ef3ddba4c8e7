"""ZeRO stage 1 (``mesh.shard_optimizer``): the AdamW moments split over ``data`` as well as the weights' own axes.

The layout rules by hand; an optimiser step under :class:`~omnir1_jax.rl.zero.ShardedOptimizer` on 8 fake CPU devices
against the same step with every moment laid out as its weight (values equal, the weights' layout kept, each
device holding an eighth of a moment instead of a quarter); the scorer reading gathered weights; and, slow, the
whole learner with both settings (``mesh.shard_optimizer``, ``mesh.update_gather``) against neither, with a
checkpoint round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from jax.sharding import PartitionSpec

from omnir1_jax.config import ConfigError, MeshSpec
from omnir1_jax.models.qwen2_5_omni.sharding import ShardingConfig, fsdp_tp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "train", "_zero_worker.py")
MESH = {"data": 2, "fsdp": 2, "tensor": 2}


def _env(devices: int = 8) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIR1_", "JAX_"))}
    env.update(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} " + os.environ.get("XLA_FLAGS", ""),
        JAX_PLATFORMS="cpu",
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return env


def _run(program: str) -> dict:
    """Run ``program`` on 8 fake CPU devices; its last stdout line, as JSON."""
    proc = subprocess.run([sys.executable, "-c", program], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_optimizer_layout_adds_data_once_to_the_first_dimension_it_divides():
    opt = fsdp_tp(optimizer_axes=("data",)).optimizer_layout()
    assert opt.optimizer_axes == ()
    # by hand from fsdp_tp's table: every weight axis gains "data" after its own axes
    assert dict(opt.rules) == {
        "vocab": ("tensor", "data"),
        "embed": ("fsdp", "data"),
        "heads": ("tensor", "data"),
        "mlp": ("tensor", "data"),
        "batch": ("data", "fsdp"),
        "length": ("data", "fsdp"),
        "cache_heads": "tensor",
        "patch": ("data",),
    }
    # a q kernel [embed 32, heads 64]: data joins the first dimension; the second keeps tensor alone
    assert opt.spec(("embed", "heads"), (32, 64), MESH) == PartitionSpec(("fsdp", "data"), "tensor")
    # an o kernel [heads 64, embed 32]: data joins heads, embed keeps fsdp
    assert opt.spec(("heads", "embed"), (64, 32), MESH) == PartitionSpec(("tensor", "data"), "fsdp")
    # embed 6 splits over fsdp (2) but not fsdp x data (4): data moves on to the next dimension
    assert opt.spec(("embed", "heads"), (6, 64), MESH) == PartitionSpec("fsdp", ("tensor", "data"))
    assert opt.spec(("embed",), (32,), MESH) == PartitionSpec(("fsdp", "data"))
    # no logical axes: replicated, as its weight
    assert opt.spec((None, None), (3, 5), MESH) == PartitionSpec(None, None)
    # the weights' own layout is unchanged, and without optimizer_axes the layout is the config itself
    assert fsdp_tp(optimizer_axes=("data",)).spec(("embed", "heads"), (32, 64), MESH) == PartitionSpec("fsdp", "tensor")
    assert fsdp_tp().optimizer_layout() == fsdp_tp()
    with pytest.raises(ValueError, match="optimizer_axes.*'dta'"):
        ShardingConfig(optimizer_axes=("dta",))
    with pytest.raises(ConfigError, match="mesh.shard_optimizer must be true or false, got 'yes'"):
        MeshSpec(shard_optimizer="yes")
    with pytest.raises(ConfigError, match="update_gather=true .*set mesh.decode_gather=true"):
        MeshSpec(update_gather=True)
    assert MeshSpec(update_gather=True, decode_gather=True).update_gather


_SHARDED_STEP = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from omnir1_jax.models.qwen2_5_omni.sharding import fsdp_tp, make_mesh, param_shardings
    from omnir1_jax.rl.zero import ShardedOptimizer
    from omnir1_jax.rl.update import make_optimizer

    class Net(nnx.Module):
        def __init__(self, rngs):
            init = nnx.initializers.normal(0.5)
            self.up = nnx.Param(init(rngs.params(), (16, 32)), logical_axes=("embed", "mlp"))
            self.down = nnx.Param(init(rngs.params(), (32, 16)), logical_axes=("mlp", "embed"))
            self.scale = nnx.Param(jnp.ones((16,)), logical_axes=("embed",))

        def __call__(self, x):
            return (jax.nn.gelu(x @ self.up[...]) @ self.down[...]) * self.scale[...]

    mesh = make_mesh((2, 2, 2))
    rules = fsdp_tp(optimizer_axes=("data",))
    x = jax.random.normal(jax.random.key(1), (8, 16))
    y = jax.random.normal(jax.random.key(2), (8, 16))

    @nnx.jit
    def step(model, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    def held(a):
        return int(np.prod(a.addressable_shards[0].data.shape)) * 8 // a.size  # eighths of the array

    out = {}
    for arm in ("plain", "zero"):
        model = Net(nnx.Rngs(0))
        state = nnx.state(model)
        nnx.update(model, jax.tree.map(jax.device_put, state, param_shardings(state, mesh, rules)))
        tx = make_optimizer(1e-2, weight_decay=0.1)
        if arm == "zero":
            opt = ShardedOptimizer(model, tx, wrt=nnx.Param, mesh=mesh, sharding=rules)
        else:
            opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        losses = [float(step(model, opt, x, y)) for _ in range(3)]
        mu = [v for v in jax.tree.leaves(opt.opt_state, is_leaf=lambda v: isinstance(v, nnx.Variable))
              if tuple(v.shape) == (16, 32)][0][...]
        out[arm] = dict(
            losses=losses,
            params={k: np.asarray(v[...]).tolist() for k, v in (("up", model.up), ("down", model.down),
                                                              ("scale", model.scale))},
            up_spec=str(model.up[...].sharding.spec), up_held=held(model.up[...]),
            mu_spec=str(mu.sharding.spec), mu_held=held(mu), mu=np.asarray(mu).tolist(),
        )
    print(json.dumps(out))
    """
)


def test_sharded_optimizer_step_equals_the_replicated_one_and_keeps_both_layouts():
    res = _run(_SHARDED_STEP)
    plain, zero = res["plain"], res["zero"]
    # same numbers: three AdamW steps (weight decay on) from the same start, same data
    assert plain["losses"][0] > plain["losses"][2]  # the steps did something
    np.testing.assert_allclose(zero["losses"], plain["losses"], rtol=0, atol=1e-6)
    for k in ("up", "down", "scale"):
        np.testing.assert_allclose(zero["params"][k], plain["params"][k], rtol=0, atol=1e-6)
    np.testing.assert_allclose(zero["mu"], plain["mu"], rtol=0, atol=1e-6)  # reduced in another order
    # layouts after three steps: the weight as its rules say (embed over fsdp, mlp over tensor: a quarter per
    # device) in both arms; its first moment over fsdp x data and tensor (an eighth) only with ZeRO
    assert plain["up_spec"] == zero["up_spec"] == "P('fsdp', 'tensor')"
    assert plain["up_held"] == zero["up_held"] == 2
    assert plain["mu_spec"] == "P('fsdp', 'tensor')" and plain["mu_held"] == 2
    assert zero["mu_spec"] == "P(('fsdp', 'data'), 'tensor')" and zero["mu_held"] == 1


_GATHER = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from omnir1_jax.models.qwen2_5_omni import CompletionScorer, fsdp_tp, init_model, make_mesh, prepare_inputs
    from omnir1_jax.models.qwen2_5_omni import repeat_prompt, tiny

    mesh = make_mesh((1, 4, 2))
    model = init_model(tiny(), seed=1, mesh=mesh, sharding=fsdp_tp(("fsdp",)))
    ids = np.array([[0, 0, 1, 20, 30, 40], [1, 50, 51, 52, 53, 54]])
    prompt = repeat_prompt(prepare_inputs(model.config, input_ids=ids, attention_mask=(ids > 0).astype(int)), 2)
    comp = jnp.asarray(np.random.default_rng(0).integers(5, 200, (4, 7)), jnp.int32)
    out = {}
    for gather in (False, True):
        scorer = CompletionScorer(group_size=2, gather_weights=gather)

        def loss(m):
            return jnp.sum(scorer(m, prompt, comp) * jnp.linspace(0.5, 1.5, 7))

        fn = nnx.jit(nnx.value_and_grad(loss))
        value, grads = fn(model)
        hlo = jax.jit(lambda s: nnx.value_and_grad(loss)(nnx.merge(nnx.graphdef(model), s))).lower(
            nnx.state(model)).compile().as_text()
        out[str(gather)] = dict(
            loss=float(value),
            grads={jax.tree_util.keystr(k): np.asarray(g).ravel()[:64].tolist()
                   for k, g in jax.tree_util.tree_leaves_with_path(nnx.state(grads))},
            all_gathers=hlo.count(" all-gather("),
        )
    print(json.dumps(out))
    """
)


def test_scorer_with_gathered_weights_equals_the_sharded_one_with_fewer_gathers():
    res = _run(_GATHER)
    off, on = res["False"], res["True"]
    np.testing.assert_allclose(on["loss"], off["loss"], rtol=1e-6)
    assert on["grads"].keys() == off["grads"].keys()
    for k in off["grads"]:
        np.testing.assert_allclose(on["grads"][k], off["grads"][k], rtol=1e-4, atol=1e-6, err_msg=k)
    # the point of the option: the decoder's weights are gathered once, not once per pass that reads them
    assert 0 < on["all_gathers"] < off["all_gathers"], (on["all_gathers"], off["all_gathers"])


@pytest.mark.slow
def test_learner_with_sharded_optimizer_and_gathered_weights_trains_like_the_plain_one_and_restores(tmp_path):
    from omnir1_jax.data.synthetic import writer

    world = str(tmp_path / "world")
    writer.write_vos(world, 5, seed=0, height=56, width=84, min_frames=4, max_frames=4)
    proc = subprocess.run(
        [sys.executable, WORKER, world, str(tmp_path / "out")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    off, on = res["off"], res["on"]
    np.testing.assert_allclose(on["losses"], off["losses"], rtol=0, atol=1e-6)
    assert off["losses"][0] != off["losses"][1]  # the first update changed the policy
    assert res["param_diff"] <= 1e-6 and res["moment_diff"] <= 1e-6
    # the token embedding [vocab, embed] over tensor x fsdp: a quarter per device; its moment an eighth with ZeRO
    for arm, mu_held, mu_axes in ((off, 0.25, ["fsdp", "tensor"]), (on, 0.125, ["data", "fsdp", "tensor"])):
        for when in ("before", "after"):
            assert arm[when] == {
                "param_axes": ["fsdp", "tensor"],
                "param_held": 0.25,
                "mu_axes": mu_axes,
                "mu_held": mu_held,
            }, (when, arm[when])
    assert on["restored"] and on["restored_layout"] == on["after"]
    assert on["restored_params_equal"] and on["restored_moments_equal"]
