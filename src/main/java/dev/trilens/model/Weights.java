package dev.trilens.model;

import dev.trilens.data.TorchGenerator;
import java.util.Arrays;

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
     * TransformerLens's default ("gpt2") init, bit for bit as PyTorch draws it after {@code torch.manual_seed(seed)}
     * (the challenge's create_model seeds, then builds the HookedTransformer): see {@link #init(ModelConfig,
     * TorchGenerator)}.
     */
    public static Weights init(ModelConfig cfg, long seed) {
        return init(cfg, new TorchGenerator(seed));
    }

    /**
     * TransformerLens's default ("gpt2") init drawn from gen: walking the parameters in named_parameters order
     * (this layout's order), every one whose name contains "W_" gets {@code normal_(0, initializer_range)} with
     * initializer_range = 0.8 / sqrt(d_model); biases stay zero and LayerNorm scales one, as constructed.
     */
    public static Weights init(ModelConfig cfg, TorchGenerator gen) {
        Weights w = new Weights(cfg);
        double std = 0.8 / Math.sqrt(cfg.dModel());
        for (ParamLayout.Param p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (p.name().contains("W_")) {
                gen.normal(w.data, p.offset(), p.size(), 0.0, std);
            } else if (leaf.equals("w")) {
                Arrays.fill(w.data, p.offset(), p.offset() + p.size(), 1f);
            }
        }
        return w;
    }
}
