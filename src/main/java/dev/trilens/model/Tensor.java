package dev.trilens.model;

import java.util.Arrays;

/**
 * A dense row-major float tensor: what a hook sees and a cache holds. The data array is the tensor itself, so a
 * hook that writes into it changes the activation the rest of the forward pass reads.
 */
public record Tensor(int[] shape, float[] data) {

    public Tensor {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + n + " floats, got "
                    + data.length);
        }
    }

    public static Tensor zeros(int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return new Tensor(shape.clone(), new float[Math.toIntExact(n)]);
    }

    public int rank() {
        return shape.length;
    }

    public int dim(int i) {
        return shape[i];
    }

    /** Flat index of a full multi-index, bounds-checked per dimension. */
    public int index(int... idx) {
        if (idx.length != shape.length) {
            throw new IllegalArgumentException("expected " + shape.length + " indices for shape "
                    + Arrays.toString(shape) + ", got " + idx.length);
        }
        int flat = 0;
        for (int i = 0; i < idx.length; i++) {
            if (idx[i] < 0 || idx[i] >= shape[i]) {
                throw new IndexOutOfBoundsException("index " + idx[i] + " out of range for dimension " + i
                        + " of size " + shape[i]);
            }
            flat = flat * shape[i] + idx[i];
        }
        return flat;
    }

    public float get(int... idx) {
        return data[index(idx)];
    }

    public void set(float value, int... idx) {
        data[index(idx)] = value;
    }

    /** Number of floats per index of the first dimension. */
    public int stride0() {
        return shape.length == 0 ? 1 : data.length / Math.max(1, shape[0]);
    }

    public Tensor copy() {
        return new Tensor(shape.clone(), data.clone());
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }
}
