package dev.trilens.cli;

import dev.trilens.model.ModelConfig;
import dev.trilens.train.TrainConfig;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * The model-shape flags `train`, `bench train` and `bench eval` share, named as TransformerLens names the config's
 * fields. Each replaces the preset's value (the challenge's shape unless a preset says otherwise); --d-vocab and
 * --n-ctx also set the dataset's vocabulary and sequence length, which are the model's.
 */
final class ShapeOptions {
    /**
     * The largest activation a batch may have, in floats: Java arrays hold at most 2^31 - 1 elements, and a step
     * keeps a few dozen activations of this order, so a shape past it would fail half-way instead of at the start.
     */
    static final long MAX_ACTIVATION_FLOATS = 1L << 28;

    @Option(names = "--d-model", paramLabel = "N", description = "residual stream width (challenge: 32)")
    Integer dModel;

    @Option(names = "--n-layers", paramLabel = "N", description = "transformer blocks (challenge: 1)")
    Integer nLayers;

    @Option(names = "--n-heads", paramLabel = "N", description = "attention heads per block (challenge: 1)")
    Integer nHeads;

    @Option(names = "--d-head", paramLabel = "N", description = "attention head size (challenge: 16)")
    Integer dHead;

    @Option(names = "--d-mlp", paramLabel = "N", description = "MLP width; 0 = attention-only (challenge: 20)")
    Integer dMlp;

    @Option(names = "--attn-only", description = "no MLP (d_mlp 0)")
    boolean attnOnly;

    @Option(names = "--d-vocab", paramLabel = "N", description = "vocabulary size, also the dataset's (challenge: 75)")
    Integer dVocab;

    @Option(names = "--n-ctx", paramLabel = "N", description = "context length, also the sequences' length "
            + "(challenge: 50)")
    Integer nCtx;

    @Option(names = "--layernorm", description = "LayerNorm before attention, MLP and unembed, as TransformerLens's "
            + "normalization_type LN (challenge: none)")
    boolean layerNorm;

    @Option(names = "--batch", paramLabel = "N", description = "sequences per batch (challenge: 512; bench eval: 2500)")
    Integer batch;

    /**
     * The flags themselves, for callers that list which flags decide a run's config. A sweep names its runs by its
     * axes in this order, so the flags train had first keep their places.
     */
    static final java.util.List<String> FLAGS = java.util.List.of("--attn-only", "--d-head", "--d-mlp", "--d-model",
            "--n-layers", "--n-heads", "--d-vocab", "--n-ctx", "--layernorm", "--batch");

    /** Checks each flag's range with a one-line error naming it. */
    void check(CommandLine cl) {
        atLeast(cl, "--d-model", dModel, 1);
        atLeast(cl, "--n-layers", nLayers, 1);
        atLeast(cl, "--n-heads", nHeads, 1);
        atLeast(cl, "--d-head", dHead, 1);
        TrainCommand.check(cl, dMlp == null || dMlp >= 0, "--d-mlp must be >= 0 (0 = attention-only), got " + dMlp);
        // a trigram is three tokens, and the dataset draws its trigrams among distinct (a, b) pairs
        atLeast(cl, "--d-vocab", dVocab, 3);
        atLeast(cl, "--n-ctx", nCtx, 3);
        atLeast(cl, "--batch", batch, 1);
        TrainCommand.check(cl, !(attnOnly && dMlp != null && dMlp != 0), "--attn-only contradicts --d-mlp " + dMlp
                + "; give one of them");
    }

    /** Whether any shape flag (not --batch) was given. */
    boolean anyShape() {
        return dModel != null || nLayers != null || nHeads != null || dHead != null || dMlp != null || attnOnly
                || dVocab != null || nCtx != null || layerNorm;
    }

    ModelConfig applyTo(ModelConfig c) {
        return new ModelConfig(or(dVocab, c.dVocab()), or(nCtx, c.nCtx()), or(dModel, c.dModel()),
                or(nLayers, c.nLayers()), or(nHeads, c.nHeads()), or(dHead, c.dHead()),
                attnOnly ? 0 : or(dMlp, c.dMlp()), layerNorm || c.layerNorm());
    }

    TrainConfig applyTo(TrainConfig c) {
        TrainConfig shaped = anyShape() ? c.withModel(applyTo(c.modelConfig())) : c;
        return batch == null ? shaped : shaped.withBatchSize(batch);
    }

    /**
     * Refuses a shape whose batch activations would not fit: the attention pattern [B, H, T, T], the logits
     * [B, T, d_vocab], the MLP [B, T, d_mlp] and q/k/v [B, T, 3 H d_head], against {@link #MAX_ACTIVATION_FLOATS}.
     */
    static void checkFits(CommandLine cl, ModelConfig c, int batchSize) {
        long bt = (long) batchSize * c.nCtx();
        long[] sizes = {bt * c.nHeads() * c.nCtx(), bt * c.dVocab(), bt * c.dMlp(), bt * 3L * c.nHeads() * c.dHead(),
                bt * c.dModel()};
        String[] names = {"attention pattern [batch, n_heads, n_ctx, n_ctx]", "logits [batch, n_ctx, d_vocab]",
                "MLP activations [batch, n_ctx, d_mlp]", "q, k, v [batch, n_ctx, 3 n_heads d_head]",
                "residual stream [batch, n_ctx, d_model]"};
        for (int i = 0; i < sizes.length; i++) {
            TrainCommand.check(cl, sizes[i] <= MAX_ACTIVATION_FLOATS, String.format(java.util.Locale.ROOT,
                    "a batch of %d sequences of this shape (%s) would hold %,d floats in its %s; expected at most %,d: "
                            + "give a smaller --batch or shape", batchSize, c, sizes[i], names[i],
                    MAX_ACTIVATION_FLOATS));
        }
    }

    private static int or(Integer given, int preset) {
        return given != null ? given : preset;
    }

    private static void atLeast(CommandLine cl, String flag, Integer value, int min) {
        TrainCommand.check(cl, value == null || value >= min, flag + " must be >= " + min + ", got " + value);
    }
}
