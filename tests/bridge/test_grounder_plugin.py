"""The bridge's grounder is a plug-in. Toy grounders registered through the documented interface
(``--grounder-plugin`` + ``register_grounder``) answer real bridge requests; the shipped worked example
(:mod:`sam2_bridge.server.example_grounder`) loads its table from a local directory. System 1's rationale end to end: a
version-3 request's context reaches a plug-in grounder's prompt, cut to its budget."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from omnir1_jax.rewards import extract_rationale
from sam2_bridge.server import grounder as grounder_lib
from sam2_bridge.wire.client import BridgeClient, BridgeError
from sam2_bridge.wire.constants import BACKGROUND
from sam2_bridge.wire.pool import LocalServer
from sam2_bridge.wire.protocol import Keyframe

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEAL, PINK = (0, 128, 128), (255, 105, 180)  # colours the synthetic grounder does not know
TEAL_BOX, PINK_BOX = (6, 4, 22, 18), (40, 30, 60, 44)  # x1, y1, x2, y2, exclusive ends

# a plug-in module written the way a user would: two kinds, one with contexts, one from before them
TOY_PLUGIN = textwrap.dedent('''
    import json, os
    import numpy as np
    from sam2_bridge.server.grounder import Grounding, grounding_prompt, register_grounder

    class EchoPrompt:
        """Returns the box stored in PATH/box.json; its raw text is the grounding prompt it would decode."""
        def __init__(self, path, device="cpu", **options):
            with open(os.path.join(path, "box.json")) as f:
                self.box = json.load(f)
            self.name = "echo_prompt"

        def ground(self, images, descriptions, contexts=None):
            contexts = contexts or [None] * len(images)
            return [Grounding(np.asarray([self.box], np.float32), ("toy",), grounding_prompt(d, c), True)
                    for d, c in zip(descriptions, contexts)]

    class OldStyle(EchoPrompt):
        """A grounder written before contexts existed; a description "nan" makes it return a broken box."""
        def ground(self, images, descriptions):
            return [Grounding(np.asarray([[np.nan] * 4 if d == "nan" else self.box], np.float32), ("toy",), d, True)
                    for d in descriptions]

    register_grounder("echo_prompt", EchoPrompt)
    register_grounder("old_style", OldStyle)
''')


def _clip(t=3, h=48, w=64):
    frames = np.full((t, h, w, 3), BACKGROUND, np.uint8)
    for (x1, y1, x2, y2), colour in ((TEAL_BOX, TEAL), (PINK_BOX, PINK)):
        frames[:, y1:y2, x1:x2] = colour
    return frames


@pytest.fixture(scope="module")
def plugin_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("plugins")
    (base / "toy_plugin.py").write_text(TOY_PLUGIN)
    weights = base / "toy_weights"
    weights.mkdir()
    (weights / "box.json").write_text(json.dumps([3, 5, 30, 40]))
    table = base / "colour_table"
    table.mkdir()
    (table / "grounder.json").write_text(json.dumps({"colours": {"teal": TEAL, "pink": PINK}, "max_distance": 30}))
    return base


def _start(tmp, name, grounder, plugin):
    server = LocalServer(
        [
            "--address",
            f"ipc://{tmp}/{name}.sock",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "synthetic",
            "--grounder",
            grounder,
            "--grounder-plugin",
            plugin,
        ],
        log_path=f"{tmp}/{name}.log",
    ).start()
    client = BridgeClient(server.address, deadline_s=120, local_server=server)
    client.wait_ready(120)
    return client, server


def test_worked_example_from_a_local_directory_through_a_real_bridge(plugin_dirs):
    example = os.path.join(REPO, "sam2_bridge", "server", "example_grounder.py")  # registered from its file
    client, server = _start(plugin_dirs, "example", f"colour_table:{plugin_dirs / 'colour_table'}", example)
    try:
        assert client.health()["grounder"] == f"colour_table:{plugin_dirs / 'colour_table'}"
        reply = client.ground(
            _clip(), [Keyframe(0, "the teal square"), Keyframe(1, "pink"), Keyframe(2, "a red circle")]
        )
        assert [b.tolist() for b in reply.boxes] == [[list(TEAL_BOX)], [list(PINK_BOX)], []]
        assert reply.labels == (("teal",), ("pink",), ())
        # a group: the plug-in's boxes are what the segmenter is prompted with (the synthetic segmenter tracks
        # palette colours only, so these off-palette squares give empty masks; SAM2 would segment them)
        result = (
            client.submit_group(_clip(), [[Keyframe(1, "teal")], [Keyframe(0, "pink or teal")]])
            .result()
            .raise_for_status()
        )
        assert result.n_detections == 3
        assert [[b.tolist() for b in r.boxes] for r in result.rollouts] == [
            [[list(TEAL_BOX)]],
            [[list(TEAL_BOX), list(PINK_BOX)]],
        ]  # colours in table order: teal, pink
    finally:
        client.close()
        server.stop()


def test_toy_grounder_gets_the_cut_rationale_in_its_prompt(plugin_dirs):
    client, server = _start(
        plugin_dirs, "echo", f"echo_prompt:{plugin_dirs / 'toy_weights'}", str(plugin_dirs / "toy_plugin.py")
    )
    answer = (
        "<think>There are two teal squares. The one that appears second moves left; the first stays at the "
        "top.</think><answer>[]</answer>"
    )
    budget = 50
    cut = extract_rationale(answer, budget)
    assert cut == "There are two teal squares. The one that appears"  # cut at the word boundary, by hand
    try:
        reply = client.ground(_clip(), [Keyframe(0, "teal square"), Keyframe(2, "teal square")], contexts=[cut, None])
        assert [b.tolist() for b in reply.boxes] == [[[3, 5, 30, 40]]] * 2  # the toy's box, from its directory
        with_context, without = reply.texts
        assert f'"{cut}"' in with_context and "second" not in with_context and len(cut) <= budget
        assert without == grounder_lib.GROUNDING_PROMPT.format(description="teal square")
        # per rollout in a group: every keyframe of rollout 0 gets its context, rollout 1 none
        result = (
            client.submit_group(
                _clip(), [[Keyframe(0, "a"), Keyframe(1, "b")], [Keyframe(0, "a")]], contexts=[cut, None]
            )
            .result()
            .raise_for_status()
        )
        assert result.n_detections == 3
    finally:
        client.close()
        server.stop()


def test_a_grounder_without_contexts_still_serves_and_a_broken_output_gets_an_error(plugin_dirs):
    client, server = _start(
        plugin_dirs, "old", f"old_style:{plugin_dirs / 'toy_weights'}", str(plugin_dirs / "toy_plugin.py")
    )
    try:
        assert client.ground(_clip(), [Keyframe(0, "x")]).boxes[0].tolist() == [[3, 5, 30, 40]]
        with pytest.raises(BridgeError) as e:
            client.ground(_clip(), [Keyframe(0, "x")], contexts=["why"])
        assert e.value.code == "bad_field" and "takes no 'contexts'" in str(e.value)
        with pytest.raises(BridgeError) as e:
            client.ground(_clip(), [Keyframe(0, "nan")])
        assert e.value.code == "internal" and "non-finite" in str(e.value)
        assert client.ground(_clip(), [Keyframe(1, "x")]).boxes[0].tolist() == [[3, 5, 30, 40]]  # still up
    finally:
        client.close()
        server.stop()


def test_registry_and_output_checks():
    with pytest.raises(ValueError, match="lower-case"):
        grounder_lib.register_grounder("Bad Kind", lambda path, **kw: None)
    with pytest.raises(ValueError, match="not 'synthetic'"):
        grounder_lib.register_grounder("synthetic", lambda path, **kw: None)
    with pytest.raises(ValueError, match="already registered"):
        grounder_lib.register_grounder("qwen2_5_vl", lambda path, **kw: None)
    with pytest.raises(ValueError, match="qwen2_5_omni"):  # the message lists the known kinds
        grounder_lib.build_grounder("nosuch:unused_dir")
    # the worked example imported by name and again from its file registers the same factory twice: no error
    grounder_lib.load_plugin("sam2_bridge.server.example_grounder")
    grounder_lib.load_plugin(os.path.join(REPO, "sam2_bridge", "server", "example_grounder.py"))
    assert grounder_lib.GROUNDERS["colour_table"].__qualname__ == "ColourTableGrounder"
    image = np.zeros((10, 20, 3), np.uint8)
    # clipped to the 20 x 10 image; a box that becomes empty is dropped with its label
    grounding = grounder_lib.Grounding(np.asarray([[-5, 2, 8, 30], [25, 0, 30, 5]]), ("a", "b"), "t", True)
    got = grounder_lib.check_groundings([grounding], [image], "toy")
    assert got[0].boxes.tolist() == [[0, 2, 8, 10]] and got[0].labels == ("a",) and got[0].boxes.dtype == np.float32
    for bad, needle in (
        ([], "returned 0 groundings for 1"),
        ([("not", "a grounding")], "expected a Grounding"),
        ([grounder_lib.Grounding(np.zeros((2, 4)), ("one",), "", True)], "2 boxes, 1 labels"),
    ):
        with pytest.raises(RuntimeError, match=needle):
            grounder_lib.check_groundings(bad, [image], "toy")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--grounder", "nosuch:unused_dir"], "nosuch:unused_dir"),
        (["--grounder", "colour_table:unused_dir", "--grounder-plugin", "no_such_dir/plugin.py"], "no such file"),
        (["--grounder", "colour_table:unused_dir", "--grounder-plugin", "no_such_module_xyz"], "cannot import"),
    ],
)
def test_serve_refuses_unknown_kinds_and_plugins_at_once(tmp_path, args, needle):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sam2_bridge.serve",
            "--address",
            f"ipc://{tmp_path}/s.sock",
            "--segmenter",
            "synthetic",
            "--device",
            "cpu",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


def test_bridge_config_names_plugins():
    from omnir1_jax.config import BridgeSpec, ConfigError, ExperimentConfig, apply_overrides

    cfg = apply_overrides(
        ExperimentConfig(),
        [
            'bridge.grounder_plugins=("sam2_bridge/server/example_grounder.py",)',
            'bridge.grounder="colour_table:my_grounder"',
        ],
    )
    assert cfg.bridge.grounder_plugins == ("sam2_bridge/server/example_grounder.py",)
    assert BridgeSpec().grounder_plugins == ()
    for bad in ("sam2_bridge/server/example_grounder.py", ("",), (3,)):
        with pytest.raises(ConfigError, match="bridge.grounder_plugins"):
            BridgeSpec(grounder_plugins=bad)
