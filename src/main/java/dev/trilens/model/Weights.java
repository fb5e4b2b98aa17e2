package dev.trilens.model;

import java.util.Random;

/** A model's parameters: a config, its layout, and one flat float array laid out by it. */
public final class Weights {
    public final ModelConfig cfg;
    public final ParamLayout layout;
    public final float[] data;

    public Weights(ModelConfig cfg) {
        this(cfg, new float[new ParamLayout(cfg).totalSize()]);
    }

    public Weights(ModelConfig cfg, float[] data) {
        this.cfg = cfg;
        this.layout = new ParamLayout(cfg);
        if (data.length != layout.totalSize()) {
            throw new IllegalArgumentException("expected " + layout.totalSize() + " floats, got " + data.length);
        }
        this.data = data;
    }

    public int offset(String name) {
        return layout.offset(name);
    }

    /** A copy of one parameter's values, row-major in its TransformerLens shape. */
    public float[] copyOf(String name) {
        ParamLayout.Param p = layout.get(name);
        float[] out = new float[p.size()];
        System.arraycopy(data, p.offset(), out, 0, out.length);
        return out;
    }

    public Weights copy() {
        return new Weights(cfg, data.clone());
    }

    /**
     * TransformerLens's default ("gpt2") init, as the challenge used it: weights N(0, std^2) with
     * std = 0.8 / sqrt(d_model), biases zero, LayerNorm scales one.
     */
    public static Weights init(ModelConfig cfg, long seed) {
        Weights w = new Weights(cfg);
        Random rng = new Random(seed);
        double std = 0.8 / Math.sqrt(cfg.dModel());
        for (ParamLayout.Param p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            boolean lnWeight = leaf.equals("w");
            for (int i = 0; i < p.size(); i++) {
                float value;
                if (lnWeight) {
                    value = 1f;
                } else if (leaf.startsWith("b")) {
                    value = 0f;
                } else {
                    value = (float) (rng.nextGaussian() * std);
                }
                w.data[p.offset() + i] = value;
            }
        }
        return w;
    }
}
