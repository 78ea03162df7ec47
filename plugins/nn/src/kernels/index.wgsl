// Prepended to every kernel of this folder (see kernels.rs).
//
// Index of this invocation in a dispatch of 64-wide workgroups that may be
// folded into 2-D (more than 65,535 workgroups; `kernels::fold`).
fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

