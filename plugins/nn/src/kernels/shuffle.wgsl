// Pixel shuffle (sub-pixel convolution) by R: [n, C·R², h, w] → [n, C, h·R, w·R],
// out[b, c, y·R + dy, x·R + dx] = in[b, c·R² + dy·R + dx, y, x]; and its
// gradient, the inverse gather. `dims` = [batch, h, w] of the small side.

override C: u32 = 1u;
override R: u32 = 2u;

@group(0) @binding(0) var<storage, read> dims: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// src = [n, C·R², h, w] (small), dst = [n, C, h·R, w·R] (large).
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = dims[0];
    let h = dims[1];
    let w = dims[2];
    let big_w = w * R;
    let big_h = h * R;
    let i = flat(gid, groups);
    if i >= n * C * big_h * big_w { return; }
    let bx = i % big_w;
    let by = (i / big_w) % big_h;
    let c = (i / (big_w * big_h)) % C;
    let b = i / (big_w * big_h * C);
    let sc = c * R * R + (by % R) * R + bx % R;
    dst[i] = src[((b * C * R * R + sc) * h + by / R) * w + bx / R];
}

// src = dL/d(large) [n, C, h·R, w·R], dst = dL/d(small) [n, C·R², h, w].
@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let n = dims[0];
    let h = dims[1];
    let w = dims[2];
    let i = flat(gid, groups);
    if i >= n * C * R * R * h * w { return; }
    let x = i % w;
    let y = (i / w) % h;
    let sc = (i / (w * h)) % (C * R * R);
    let b = i / (w * h * C * R * R);
    let c = sc / (R * R);
    let dy = (sc % (R * R)) / R;
    let dx = sc % R;
    dst[i] = src[((b * C + c) * h * R + y * R + dy) * w * R + x * R + dx];
}
