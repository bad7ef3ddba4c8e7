"""Flax (NNX) Qwen2.5-Omni Thinker — System 1 policy of Omni-R1.

Typical use::

    from omnir1_jax.models.qwen2_5_omni import from_hf, generate
    model = from_hf("checkpoints/Qwen2.5-Omni-7B", dtype=jnp.bfloat16)
    out = model(**processor_outputs)            # .logits, like transformers' Thinker forward
    samples = generate(model, processor_outputs, max_new_tokens=256, num_samples=8, key=jax.random.key(0))

Nothing here imports torch.
"""

from omnir1_jax.models.qwen2_5_omni.config import (
    AudioConfig,
    ConfigError,
    Qwen2_5OmniConfig,
    TextConfig,
    VisionConfig,
    qwen2_5_omni_3b,
    qwen2_5_omni_7b,
    tiny,
)
from omnir1_jax.models.qwen2_5_omni.convert import abstract_model, from_hf, stored_dtype, to_hf
from omnir1_jax.models.qwen2_5_omni.rope_index import get_rope_index
from omnir1_jax.models.qwen2_5_omni.safetensors_io import CheckpointError
from omnir1_jax.models.qwen2_5_omni.sampling import SampleOutput, filter_logits, generate
from omnir1_jax.models.qwen2_5_omni.scoring import (
    CompletionScorer,
    append_completion,
    completion_logprobs,
    group_completion_logprobs,
    sequence_logprobs,
    trajectory_logprobs,
)
from omnir1_jax.models.qwen2_5_omni.sharding import (
    ShardingConfig,
    fsdp_tp,
    make_mesh,
    memory_report,
    no_sharding,
    param_partition_specs,
    param_shardings,
    shard_model,
)
from omnir1_jax.models.qwen2_5_omni.thinker import (
    InputError,
    ModelInputs,
    Qwen2_5OmniThinker,
    ThinkerOutput,
    cast_weights,
    compute_view,
    init_model,
    prepare_inputs,
    repeat_prompt,
    unrepeat_prompt,
)
