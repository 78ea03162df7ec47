//! Small 3-vector and 4×4 matrix helpers (f32, as on the GPU).

use std::ops::{Add, Mul, Neg, Sub};

/// A 3-vector.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct V3 {
    /// x
    pub x: f32,
    /// y
    pub y: f32,
    /// z
    pub z: f32,
}

/// Shorthand constructor.
pub const fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

impl V3 {
    /// From an array.
    pub fn from_array(a: [f32; 3]) -> V3 {
        v3(a[0], a[1], a[2])
    }
    /// To an array.
    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }
    /// All components `s`.
    pub fn splat(s: f32) -> V3 {
        v3(s, s, s)
    }
    /// Dot product.
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    /// Cross product.
    pub fn cross(self, o: V3) -> V3 {
        v3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    /// Length.
    pub fn length(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// Unit vector (as WGSL's `normalize`).
    pub fn normalize(self) -> V3 {
        self * (1.0 / self.length())
    }
    /// Component-wise product.
    pub fn mul_elem(self, o: V3) -> V3 {
        v3(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    /// Component-wise minimum.
    pub fn min(self, o: V3) -> V3 {
        v3(self.x.min(o.x), self.y.min(o.y), self.z.min(o.z))
    }
    /// Component-wise maximum.
    pub fn max(self, o: V3) -> V3 {
        v3(self.x.max(o.x), self.y.max(o.y), self.z.max(o.z))
    }
    /// Component `i` (0, 1, 2).
    pub fn axis(self, i: usize) -> f32 {
        match i {
            0 => self.x,
            1 => self.y,
            _ => self.z,
        }
    }
    /// Largest component.
    pub fn max_elem(self) -> f32 {
        self.x.max(self.y).max(self.z)
    }
}

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        v3(self.x * s, self.y * s, self.z * s)
    }
}
impl Neg for V3 {
    type Output = V3;
    fn neg(self) -> V3 {
        v3(-self.x, -self.y, -self.z)
    }
}

/// A column-major 4×4 matrix, as glTF stores them.
pub type M4 = [[f32; 4]; 4];

/// The identity matrix.
pub const IDENTITY: M4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// `a × b`.
pub fn mul_m4(a: &M4, b: &M4) -> M4 {
    let mut r = [[0.0; 4]; 4];
    for (c, col) in r.iter_mut().enumerate() {
        for (row, out) in col.iter_mut().enumerate() {
            *out = (0..4).map(|k| a[k][row] * b[c][k]).sum();
        }
    }
    r
}

/// The matrix of translation `t`, unit quaternion `r` (x, y, z, w) and
/// scale `s`, applied as T × R × S (glTF's order).
pub fn trs_matrix(t: [f32; 3], r: [f32; 4], s: [f32; 3]) -> M4 {
    let [x, y, z, w] = r;
    let rot = [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y + z * w),
            2.0 * (x * z - y * w),
        ],
        [
            2.0 * (x * y - z * w),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z + x * w),
        ],
        [
            2.0 * (x * z + y * w),
            2.0 * (y * z - x * w),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ];
    [
        [rot[0][0] * s[0], rot[0][1] * s[0], rot[0][2] * s[0], 0.0],
        [rot[1][0] * s[1], rot[1][1] * s[1], rot[1][2] * s[1], 0.0],
        [rot[2][0] * s[2], rot[2][1] * s[2], rot[2][2] * s[2], 0.0],
        [t[0], t[1], t[2], 1.0],
    ]
}

/// Transforms a point.
pub fn transform_point(m: &M4, p: V3) -> V3 {
    v3(
        m[0][0] * p.x + m[1][0] * p.y + m[2][0] * p.z + m[3][0],
        m[0][1] * p.x + m[1][1] * p.y + m[2][1] * p.z + m[3][1],
        m[0][2] * p.x + m[1][2] * p.y + m[2][2] * p.z + m[3][2],
    )
}

/// Transforms a direction (no translation).
pub fn transform_dir(m: &M4, d: V3) -> V3 {
    v3(
        m[0][0] * d.x + m[1][0] * d.y + m[2][0] * d.z,
        m[0][1] * d.x + m[1][1] * d.y + m[2][1] * d.z,
        m[0][2] * d.x + m[1][2] * d.y + m[2][2] * d.z,
    )
}

/// The matrix that transforms normals: the inverse transpose of the upper
/// 3×3 (as columns), or `None` when singular.
pub fn normal_matrix(m: &M4) -> Option<[V3; 3]> {
    let c0 = v3(m[0][0], m[0][1], m[0][2]);
    let c1 = v3(m[1][0], m[1][1], m[1][2]);
    let c2 = v3(m[2][0], m[2][1], m[2][2]);
    let det = c0.dot(c1.cross(c2));
    if det.abs() < 1e-20 || !det.is_finite() {
        return None;
    }
    // Inverse-transpose columns of [c0 c1 c2] are the cofactor rows / det.
    let inv = 1.0 / det;
    Some([c1.cross(c2) * inv, c2.cross(c0) * inv, c0.cross(c1) * inv])
}

/// Applies a normal matrix from [`normal_matrix`].
pub fn transform_normal(n: &[V3; 3], v: V3) -> V3 {
    n[0] * v.x + n[1] * v.y + n[2] * v.z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_stay_perpendicular_under_non_uniform_scale() {
        let m: M4 = [
            [2.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 2.0, 3.0, 1.0],
        ];
        let (a, b) = (v3(1.0, 1.0, 0.0), v3(0.0, 0.0, 1.0));
        let n = a.cross(b);
        let nm = normal_matrix(&m).unwrap();
        let (ta, tb) = (transform_dir(&m, a), transform_dir(&m, b));
        assert!(transform_normal(&nm, n).dot(ta).abs() < 1e-6);
        assert!(transform_normal(&nm, n).dot(tb).abs() < 1e-6);
        assert_eq!(transform_point(&m, v3(1.0, 0.0, 0.0)), v3(3.0, 2.0, 3.0));
        assert_eq!(mul_m4(&IDENTITY, &m), m);
        // A quarter turn about y takes +x to -z.
        let h = std::f32::consts::FRAC_PI_4;
        let q = trs_matrix([0.0; 3], [0.0, h.sin(), 0.0, h.cos()], [1.0; 3]);
        let p = transform_point(&q, v3(1.0, 0.0, 0.0));
        assert!((p - v3(0.0, 0.0, -1.0)).length() < 1e-6, "{p:?}");
    }
}
