// Gradient of an activation, in place: grad *= act'(a), from the
// activation's output a (ReLU: a > 0; tanh: 1 - a²), so the pre-activation
// need not be kept. ACT: 0 = identity, 1 = ReLU, 2 = tanh.

override ACT: u32 = 1u;

@group(0) @binding(0) var<storage, read> act_out: array<f32>;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if i >= arrayLength(&values) { return; }
    let a = act_out[i];
    if ACT == 1u {
        values[i] = select(0.0, values[i], a > 0.0);
    } else if ACT == 2u {
        values[i] = values[i] * (1.0 - a * a);
    }
}
