"""`py-scale`: a job plugin in Python, built with componentize-py.

Multiplies every number in each text file under `/input` by
`params.factor` on the GPU (one compute dispatch per file through
`pictor:plugin/gpu`) and writes the results, one per line, to the same
name under `/output`. It reports progress after each file and saves a
checkpoint listing the files done, so an interrupted job picks up where
it stopped. Params: `{"factor": 2.0}` (optional, default 2).
"""

import json
import os
import struct

import wit_world
from componentize_py_types import Err
# `types` of pictor:plugin, named apart from wasi:filesystem's `types`.
from wit_world.imports import checkpoint, gpu, progress
from wit_world.imports import pictor_plugin_types as types

SHADER = """
@group(0) @binding(0) var<storage, read_write> values: array<f32>;
override factor: f32 = 1.0;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&values) {
        values[id.x] = values[id.x] * factor;
    }
}
"""

MAX_VALUES = 1 << 20


def fail(error):
    raise Err(error)


def read_numbers(name):
    path = os.path.join("/input", name)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        fail(types.JobError_Io(f"reading {path}: {e}"))
    numbers = []
    for line_no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            numbers.append(float(line))
        except ValueError:
            fail(types.JobError_InvalidInput(f"{path} line {line_no}: `{line[:40]}` is not a number"))
    if len(numbers) > MAX_VALUES:
        fail(types.JobError_InvalidInput(f"{path} has {len(numbers)} numbers, the most is {MAX_VALUES}"))
    return numbers


def scale_on_gpu(numbers, factor):
    """One dispatch: `numbers[i] * factor` for every i."""
    if not numbers:
        return []
    size = 4 * len(numbers)
    try:
        buffer = gpu.create_buffer(size, gpu.BufferUsage.STORAGE)
        buffer.write(0, struct.pack(f"<{len(numbers)}f", *numbers))
        module = gpu.create_shader_module(SHADER)
        pipeline = gpu.create_compute_pipeline(module, "main", [gpu.Constant("factor", factor)])
        group = gpu.create_bind_group(pipeline, 0, [gpu.BufferBinding(0, buffer, 0, None)])
        groups = (len(numbers) + 63) // 64
        gpu.submit([gpu.Command_Dispatch(gpu.Dispatch(pipeline, [group], groups, 1, 1))])
        data = buffer.read(0, size)
    except Err as e:
        fail(types.JobError_Failed(f"GPU: {e.value}"))
    return list(struct.unpack(f"<{len(numbers)}f", data))


class WitWorld(wit_world.WitWorld):
    def run(self, job: types.JobInfo) -> types.JobSummary:
        try:
            params = json.loads(job.params or "{}")
        except ValueError as e:
            fail(types.JobError_InvalidParams(f"params are not JSON: {e}"))
        if not isinstance(params, dict) or set(params) - {"factor"}:
            fail(types.JobError_InvalidParams("params may only have `factor`"))
        factor = params.get("factor", 2.0)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            fail(types.JobError_InvalidParams("`factor` must be a number"))

        names = sorted(n for n in os.listdir("/input") if os.path.isfile(os.path.join("/input", n)))
        saved = checkpoint.load()
        done = json.loads(saved) if saved else {"files": [], "values": 0}
        for index, name in enumerate(names):
            if name in done["files"]:
                continue
            if progress.cancelled():
                fail(types.JobError_Cancelled())
            scaled = scale_on_gpu(read_numbers(name), float(factor))
            with open(os.path.join("/output", name), "w") as out:
                out.write("".join(f"{v:g}\n" for v in scaled))
            done["files"].append(name)
            done["values"] += len(scaled)
            try:
                checkpoint.save(json.dumps(done).encode())
            except Err as e:
                print(f"py-scale: checkpoint not saved: {e.value}")
            progress.report((index + 1) / len(names), f"scaled {name}")
        print(f"py-scale: {len(names)} files for job {job.id}")
        return types.JobSummary(
            f"scaled {done['values']} numbers in {len(names)} files by {factor:g}",
            [types.Metric("files", float(len(names))), types.Metric("values", float(done["values"]))],
        )
