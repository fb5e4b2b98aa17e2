package dev.trilens.model;

import dev.trilens.TrilensException;

/**
 * Shape of a HookedTransformer, with TransformerLens's meaning for each field.
 *
 * @param dMlp 0 for an attention-only model
 * @param layerNorm TransformerLens's "LN": ln1 before attention, ln2 before the MLP, ln_final before the unembed
 */
public record ModelConfig(int dVocab, int nCtx, int dModel, int nLayers, int nHeads, int dHead, int dMlp,
                          boolean layerNorm) {

    public static final float LN_EPS = dev.trilens.model.kernels.TensorOps.LN_EPS;

    public ModelConfig {
        requirePositive("d_vocab", dVocab);
        requirePositive("n_ctx", nCtx);
        requirePositive("d_model", dModel);
        requirePositive("n_layers", nLayers);
        requirePositive("n_heads", nHeads);
        requirePositive("d_head", dHead);
        if (dMlp < 0) {
            throw new TrilensException("d_mlp must be >= 0 (0 means attention-only), got " + dMlp);
        }
    }

    /** The ARENA November 2024 trigram challenge model. */
    public static ModelConfig arena() {
        return new ModelConfig(75, 50, 32, 1, 1, 16, 20, false);
    }

    public boolean attnOnly() {
        return dMlp == 0;
    }

    /**
     * Multiply-adds of a forward pass per token, with causal attention reading (n_ctx + 1) / 2 keys on average: what
     * a command weighs its work by (see Kernels.preferForWork).
     */
    public long tokenMultiplyAdds() {
        long perLayer = 4L * dModel * nHeads * dHead + (long) nHeads * dHead * (nCtx + 1) + 2L * dModel * dMlp;
        return nLayers * perLayer + (long) dModel * dVocab;
    }

    public ModelConfig withDMlp(int newDMlp) {
        return new ModelConfig(dVocab, nCtx, dModel, nLayers, nHeads, dHead, newDMlp, layerNorm);
    }

    public ModelConfig withDHead(int newDHead) {
        return new ModelConfig(dVocab, nCtx, dModel, nLayers, nHeads, newDHead, dMlp, layerNorm);
    }

    private static void requirePositive(String name, int value) {
        if (value <= 0) {
            throw new TrilensException(name + " must be a positive integer, got " + value);
        }
    }

    @Override
    public String toString() {
        return "d_vocab=" + dVocab + " n_ctx=" + nCtx + " d_model=" + dModel + " n_layers=" + nLayers
                + " n_heads=" + nHeads + " d_head=" + dHead + " d_mlp=" + (attnOnly() ? "none" : dMlp)
                + " normalization=" + (layerNorm ? "LN" : "none");
    }
}
