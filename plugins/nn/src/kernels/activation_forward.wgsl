// Activations, in place: out = act(out). ACT: 0 = identity, 1 = ReLU, 2 = tanh.

override ACT: u32 = 1u;

@group(0) @binding(0) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= arrayLength(&values) { return; }
    let v = values[i];
    if ACT == 1u {
        values[i] = max(v, 0.0);
    } else if ACT == 2u {
        values[i] = tanh(v);
    }
}
