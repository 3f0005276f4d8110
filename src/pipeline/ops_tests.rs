//! The CPU layer kernels against candle's generic ops, and their refusals of bad shapes.

use super::*;
use crate::kernels::{matmul_strided, to_native};
use candle_core::{Device, Var};

pub(crate) fn random(shape: &[usize], seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..shape.iter().product::<usize>())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

fn layer(spec: ConvSpec, act: ActKind) -> ConvAct {
    layer_seeded(spec, act, 0)
}

/// A layer of random weights, biases and slopes (drawn from `seed`).
pub(crate) fn layer_seeded(spec: ConvSpec, act: ActKind, seed: u64) -> ConvAct {
    let dev = Device::Cpu;
    let w_in = if spec.depthwise { 1 } else { spec.c_in };
    let map = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
    {
        let mut data = map.data().lock().unwrap();
        let w =
            Tensor::from_vec(random(&[spec.c_out * w_in * spec.k * spec.k], seed + 1), (spec.c_out, w_in, spec.k, spec.k), &dev).unwrap();
        data.insert("l.weight".into(), Var::from_tensor(&w).unwrap());
        let b = Tensor::from_vec(random(&[spec.c_out], seed + 2), spec.c_out, &dev).unwrap();
        data.insert("l.bias".into(), Var::from_tensor(&b).unwrap());
        let a = Tensor::from_vec(random(&[spec.c_out], seed + 3), spec.c_out, &dev).unwrap();
        data.insert("l.alpha".into(), Var::from_tensor(&a).unwrap());
    }
    ConvAct::load(vb.pp("l"), spec, act).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// A layer fed the wrong number of channels, and a product whose strides reach past its
/// buffers, are errors (they used to read out of bounds, then to panic).
#[test]
fn shape_mismatches_are_errors_not_reads_past_the_end() {
    let dev = Device::Cpu;
    let x5 = to_native(&Tensor::from_vec(random(&[5 * 9 * 9], 1), (1, 5, 9, 9), &dev).unwrap()).unwrap();
    for spec in [ConvSpec::dense(8, 4, 3, 1, 1), ConvSpec::dense(8, 4, 1, 1, 0), ConvSpec::depthwise(8, 3, 1, 1)] {
        let err = layer(spec, ActKind::PRelu).forward(&x5).unwrap_err();
        assert!(err.to_string().contains("input channels"), "{spec:?}: {err}");
    }
    let (a, b) = (vec![1f32; 6], vec![1f32; 6]);
    let mut d = vec![0f32; 4];
    assert!(matmul_strided(2, 2, 3, &mut d, (2, 1), false, &a, (3, 1), &b, (2, 1)).is_ok());
    assert_eq!(d, vec![3.0; 4]);
    assert!(matmul_strided(2, 2, 4, &mut d, (2, 1), false, &a, (4, 1), &b, (2, 1)).is_err());
    assert!(matmul_strided(3, 2, 3, &mut d, (2, 1), false, &a, (3, 1), &b, (2, 1)).is_err());
}

/// Strides whose reach overflows a usize (wrapping to a small end in a release build) or
/// that do not fit gemm's isize are errors, never a write before or past the buffer. CI
/// runs this in release mode too, where unchecked arithmetic would wrap silently.
#[test]
fn strides_that_overflow_are_errors() {
    let one = [1f32];
    let mut d = [0f32; 1];
    for (m, n, ds) in [
        (2, 1, (usize::MAX, 1)),
        (3, 1, (1usize << 63, 1)),
        (2, 2, (usize::MAX / 2 + 1, usize::MAX / 2 + 1)),
        (1, 1, (usize::MAX, usize::MAX)),
    ] {
        let r = std::panic::catch_unwind(|| {
            let mut d = d;
            matmul_strided(m, n, 1, &mut d, ds, false, &[1f32; 4], (1, 0), &one, (0, 0)).is_err()
        });
        assert_eq!(r.ok(), Some(true), "{m}x{n} with strides {ds:?}");
    }
    assert!(matmul_strided(1, 1, 2, &mut d, (0, 0), false, &one, (0, usize::MAX), &[1f32; 2], (1, 0)).is_err());
    assert!(matmul_strided(1, 1, 1, &mut d, (0, 0), false, &one, (0, 0), &one, (0, 0)).is_ok());
    assert_eq!(d, [1.0]);
    let mut big = [MaybeUninit::<f32>::uninit(); 4];
    assert!(matmul_uninit(usize::MAX, 2, 1, &mut big, &one, &one).is_err());
}

#[test]
fn fast_cpu_kernels_match_candle_generic_ops() {
    let dev = Device::Cpu;
    let x8 = Tensor::from_vec(random(&[2 * 8 * 13 * 12], 7), (2, 8, 13, 12), &dev).unwrap();
    let cases = [
        (ConvSpec::depthwise(8, 3, 1, 1), ActKind::PRelu),
        (ConvSpec::depthwise(8, 3, 2, 1), ActKind::Leaky(0.1)),
        (ConvSpec::depthwise(8, 3, 2, 0).with_pad(Pad { top: 0, left: 0, bottom: 1, right: 1 }), ActKind::Relu),
        (ConvSpec::depthwise(8, 7, 1, 0), ActKind::Linear),
        (ConvSpec::dense(8, 5, 1, 1, 0), ActKind::PRelu),
        (ConvSpec::dense(3, 8, 3, 2, 1), ActKind::Leaky(0.1)),
        (ConvSpec::dense(8, 5, 3, 2, 1), ActKind::Leaky(0.1)),
        (ConvSpec::dense(8, 4, 3, 2, 0).with_pad(Pad { top: 0, left: 0, bottom: 1, right: 1 }), ActKind::PRelu),
    ];
    for (spec, act) in cases {
        let x = if spec.c_in == 3 { x8.narrow(1, 0, 3).unwrap().contiguous().unwrap() } else { x8.clone() };
        let l = layer(spec, act);
        let fast = l.forward(&to_native(&x).unwrap()).unwrap().permute((0, 3, 1, 2)).unwrap();
        let slow = l.forward_generic(&x).unwrap();
        assert_eq!(fast.dims(), slow.dims(), "{spec:?}");
        assert!(max_diff(&fast, &slow) < 1e-5, "{spec:?} {act:?}: {}", max_diff(&fast, &slow));
    }
    // 3x3 stride 1 from 32 channels up runs as Winograd F(2x2, 3x3) (maps of under 2x2 outputs
    // as im2col): odd and even sizes, down to one pixel wide or high, maps of several bands of
    // tile rows, other paddings
    let pads = [Pad::same(1), Pad::same(0), Pad { top: 0, left: 0, bottom: 1, right: 1 }, Pad { top: 2, left: 1, bottom: 0, right: 2 }];
    for ((h, w), pad) in [(9, 11), (5, 1), (1, 4), (1, 1), (30, 7), (13, 70)].into_iter().zip(pads.into_iter().cycle()).chain([
        ((9, 11), pads[2]),
        ((12, 9), pads[3]),
        ((8, 8), pads[1]),
        ((5, 1), pads[0]),
        ((1, 4), pads[0]),
        ((2, 2), pads[0]),
    ]) {
        if h + pad.top + pad.bottom < 3 || w + pad.left + pad.right < 3 {
            continue;
        }
        let x = Tensor::from_vec(random(&[2 * 40 * h * w], 5), (2, 40, h, w), &dev).unwrap();
        let l = layer(ConvSpec::dense(40, 24, 3, 1, 1).with_pad(pad), ActKind::PRelu);
        let (h, w) = (h + pad.top + pad.bottom - 2, w + pad.left + pad.right - 2);
        let fast = l.forward(&to_native(&x).unwrap()).unwrap().permute((0, 3, 1, 2)).unwrap();
        let slow = l.forward_generic(&x).unwrap();
        assert_eq!(fast.dims(), slow.dims());
        assert!(max_diff(&fast, &slow) < 1e-4, "{h}x{w} {pad:?}: {}", max_diff(&fast, &slow));
        let r = Tensor::from_vec(random(&[2 * 24 * h * w], 6), (2, 24, h, w), &dev).unwrap();
        let fused = l.forward_add(&to_native(&x).unwrap(), &to_native(&r).unwrap()).unwrap().permute((0, 3, 1, 2)).unwrap();
        assert!(max_diff(&fused, &(slow + r).unwrap()) < 1e-4, "{h}x{w} with a residual");
    }
}

/// The residual add fused into the kernel equals the layer followed by an add (each kernel:
/// stem-sized, 1x1 and 3x3 dense over several tiles, depthwise), and a residual of another
/// shape is an error.
#[test]
fn fused_residual_add_matches_layer_then_add() {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(random(&[2 * 8 * 40 * 37], 9), (2, 8, 40, 37), &dev).unwrap();
    let cases = [
        (ConvSpec::dense(8, 8, 1, 1, 0), ActKind::Linear),
        (ConvSpec::dense(8, 16, 1, 1, 0), ActKind::Linear),
        (ConvSpec::dense(8, 6, 3, 1, 1), ActKind::Leaky(0.1)),
        (ConvSpec::depthwise(8, 3, 1, 1), ActKind::PRelu),
    ];
    for (spec, act) in cases {
        let l = layer(spec, act);
        let r = Tensor::from_vec(random(&[2 * spec.c_out * 40 * 37], 11), (2, spec.c_out, 40, 37), &dev).unwrap();
        let fast = l.forward_add(&to_native(&x).unwrap(), &to_native(&r).unwrap()).unwrap().permute((0, 3, 1, 2)).unwrap();
        let slow = (l.forward_generic(&x).unwrap() + &r).unwrap();
        assert!(max_diff(&fast, &slow) < 1e-5, "{spec:?}: {}", max_diff(&fast, &slow));
        let wrong = to_native(&r.narrow(2, 0, 39).unwrap()).unwrap();
        assert!(l.forward_add(&to_native(&x).unwrap(), &wrong).is_err());
    }
}

#[test]
fn tf_same_padding_is_bottom_right_heavy() {
    assert_eq!(Pad::tf_same(112, 3, 2), (0, 1));
    assert_eq!(Pad::tf_same(56, 3, 1), (1, 1));
    assert_eq!(Pad::tf_same(7, 3, 2), (1, 1));
}
