//! The CPU kernels' foundation, below the networks and the pipeline: the feature-map layout
//! per device, padding, a bounds-checked single-thread GEMM, the run-time SIMD dispatch
//! (`multiversion!`) and the uninitialised-output contract of the parallel layer kernels.

pub mod int8;

use std::mem::MaybeUninit;

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

/// Padding as (top, left, bottom, right): TensorFlow's SAME padding is asymmetric for stride 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pad {
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
}

impl Pad {
    pub const fn same(p: usize) -> Self {
        Self { top: p, left: p, bottom: p, right: p }
    }
    /// TensorFlow "SAME" padding for a square kernel `k` and stride `s` on an `n`-pixel side.
    pub fn tf_same(n: usize, k: usize, s: usize) -> (usize, usize) {
        let out = n.div_ceil(s);
        let total = ((out - 1) * s + k).saturating_sub(n);
        (total / 2, total - total / 2)
    }
}

/// Output side of a convolution: `n` input pixels padded by `a` and `b`, kernel `k`, stride `s`.
pub(crate) fn out_size(n: usize, k: usize, s: usize, a: usize, b: usize) -> Result<usize> {
    if n + a + b < k {
        candle_core::bail!("kernel {k} does not fit a side of {n} padded by {a}+{b}");
    }
    Ok((n + a + b - k) / s + 1)
}

/// `dst (m × n) = a (m × k) · b (k × n)`, or `+=` with `accumulate`, on one thread. Each matrix
/// is a slice with its (row stride, column stride), so transposes are only strides. An error
/// when a stride would reach past its slice (a shape bug, never undefined behaviour).
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided<T: candle_core::WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    ds: (usize, usize),
    accumulate: bool,
    a: &[T],
    as_: (usize, usize),
    b: &[T],
    bs: (usize, usize),
) -> Result<()> {
    // One past the largest index a matrix reaches, or None where that (or a stride as gemm's
    // isize) does not fit: checked arithmetic, so no stride can wrap around into a small end.
    let end = |rows: usize, cols: usize, (rs, cs): (usize, usize)| -> Option<usize> {
        if isize::try_from(rs).is_err() || isize::try_from(cs).is_err() {
            return None;
        }
        if rows == 0 || cols == 0 {
            return Some(0);
        }
        (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)?.checked_add(1)
    };
    let fits = |e: Option<usize>, len: usize| e.is_some_and(|e| e <= len);
    if !fits(end(m, n, ds), dst.len()) || !fits(end(m, k, as_), a.len()) || !fits(end(k, n, bs), b.len()) {
        candle_core::bail!("matmul {m}x{k} . {k}x{n}: strides reach past buffers of {}, {} and {} values", dst.len(), a.len(), b.len());
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    // SAFETY: the largest index of each matrix, (rows - 1)·row stride + (cols - 1)·column
    // stride, was computed without overflow and checked against its slice just above, and
    // every stride fits an isize (so the casts below are exact); gemm reads and writes
    // nothing else.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds.1 as isize,
            ds.0 as isize,
            accumulate,
            a.as_ptr(),
            as_.1 as isize,
            as_.0 as isize,
            b.as_ptr(),
            bs.1 as isize,
            bs.0 as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

thread_local! {
    static GENERIC_OPS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the candle-op path (the one CUDA and Metal take) on the CPU as well, on this
/// thread: the tests run the GPU path's numbers without a GPU. The trainable networks of
/// [`crate::nets`] then skip their CPU custom ops too.
pub fn with_generic_ops<T>(f: impl FnOnce() -> T) -> T {
    let before = GENERIC_OPS.with(|g| g.replace(true));
    let out = f();
    GENERIC_OPS.with(|g| g.set(before));
    out
}

/// On the CPU, feature maps are kept channels-last (NHWC), so that 1x1 convolutions are one
/// matrix product and depthwise filters vectorise over channels; elsewhere (and inside
/// [`with_generic_ops`]) they are NCHW and the layers are candle ops.
pub fn channels_last(device: &Device) -> bool {
    device.is_cpu() && !GENERIC_OPS.with(|g| g.get())
}

/// The channel dimension of a feature map on `device`.
pub fn channel_dim(device: &Device) -> usize {
    if channels_last(device) {
        3
    } else {
        1
    }
}

/// Converts an NCHW input to the device's feature-map layout.
pub fn to_native(x: &Tensor) -> Result<Tensor> {
    if channels_last(x.device()) {
        x.permute((0, 2, 3, 1))?.contiguous()
    } else {
        Ok(x.clone())
    }
}

/// (height, width) of a feature map in the device's layout.
pub fn spatial(x: &Tensor) -> Result<(usize, usize)> {
    if channels_last(x.device()) {
        Ok((x.dim(1)?, x.dim(2)?))
    } else {
        Ok((x.dim(2)?, x.dim(3)?))
    }
}

/// Nearest-neighbour resize to `(h, w)` (floor of the asymmetric source index, as ONNX Resize).
pub fn upsample_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    if channels_last(x.device()) {
        x.permute((0, 3, 1, 2))?.upsample_nearest2d(h, w)?.permute((0, 2, 3, 1))?.contiguous()
    } else {
        x.upsample_nearest2d(h, w)
    }
}

/// Defines `fn $name(..)` that runs its body compiled for AVX-512 (F, BW, VL) when the CPU has
/// it, else for AVX2 + FMA when it has those (checked at run time, cached by std), and for the
/// baseline target otherwise. The kernels below are plain loops the compiler vectorises: 16 or
/// 8 lanes instead of SSE2's 4. One type parameter with one bound may be given (`fn f<T: B>`).
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident $(<$g:ident: $b:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                fn avx512 $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                // every feature enabled above, and those `avx512f` implies (avx2, fma, f16c)
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
                {
                    // SAFETY: the CPU has every feature `avx512` was compiled for (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2 $(<$g: $b>)? ($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` was compiled for (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// A layer's output of `len` values, made in parallel chunks of `chunk` values by `fill(state,
/// chunk index, chunk)`. No zeroing pass over the whole buffer up front: `vec![0.0; len]` was a
/// cold pass over every output (11 % of `verify` on small photos, the kernel's page clearing
/// another 4 %), and a GEMM that overwrites its output needs none.
///
/// # Safety
/// Whenever `fill` returns `Ok`, it has written every value of the chunk it was given
/// (through [`zeroed`] and then any kernel, or by `matmul_uninit`): uninitialised memory
/// cannot be checked, so the caller promises it.
pub(crate) unsafe fn par_output<S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) -> Result<()> + Sync + Send,
) -> Result<Vec<f32>> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .try_for_each_init(init, |state, (i, part)| fill(state, i, part))?;
    // SAFETY: the chunks cover the first `len` elements (par_chunks_mut of exactly that range)
    // and every `fill` that returned Ok wrote all of its chunk (this function's precondition);
    // on an error we returned before this.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// `part` zeroed, as the `[f32]` it now is (for kernels that take initialised slices).
pub(crate) fn zeroed(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    for v in part.iter_mut() {
        v.write(0.0);
    }
    // SAFETY: every element was written just above, and MaybeUninit<f32> has f32's layout.
    unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) }
}
