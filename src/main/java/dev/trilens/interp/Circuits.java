package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.List;

/**
 * Analyses 3, 4 and 7 of the interpretability engine: the QK circuit ({@link QkCircuit}), the OV circuit
 * ({@link OvCircuit}), the MLP ({@link MlpAnalysis}) and weight processing ({@link WeightProcessing}), computed
 * together; the weights they read as matrices are {@link WeightMatrices}.
 *
 * <p><b>Which weights the circuits read.</b> For a model without LayerNorm, the raw weights: for layer 0 the
 * residual stream a token enters with is exactly W_E[tok] + W_pos[pos], so the circuits are exact. For a LayerNorm
 * model, the weights after {@link WeightProcessing#foldLn} and {@link WeightProcessing#centerWritingWeights}, i.e.
 * TransformerLens's processed model, whose only remaining non-linearity before each layer is LNPre's division by
 * the residual norm; the circuits drop that division (a linearisation) and say so. For layers after the first, the
 * circuits are the direct path from the embeddings only (earlier layers also write into the residual stream).
 *
 * <p>JSON keys: {@code qk_circuit} ({@link QkCircuit}), {@code ov_circuit} ({@link OvCircuit}), {@code mlp}
 * ({@link MlpAnalysis}), {@code weight_processing} ({@link WeightProcessing}), {@code seconds} (wall time of all
 * four), {@code summary} (the four summaries' sentences, in that order).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record Circuits(QkCircuit qkCircuit, OvCircuit ovCircuit, MlpAnalysis mlp, WeightProcessing weightProcessing,
                       double seconds, List<String> summary) {

    public static Circuits compute(AnalysisContext ctx) {
        long t0 = System.nanoTime();
        QkCircuit qk = QkCircuit.compute(ctx);
        OvCircuit ov = OvCircuit.compute(ctx);
        MlpAnalysis mlp = MlpAnalysis.compute(ctx);
        WeightProcessing wp = WeightProcessing.compute(ctx);
        List<String> summary = new ArrayList<>();
        summary.addAll(qk.summary());
        summary.addAll(ov.summary());
        summary.addAll(mlp.summary());
        summary.addAll(wp.summary());
        return new Circuits(qk, ov, mlp, wp, (System.nanoTime() - t0) / 1e9, summary);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Which weights the circuits read

    /**
     * The weights the circuits are read from, and whether they are exact or linearised.
     *
     * @param linearised true for a LayerNorm model: LNPre's division by the residual norm is dropped
     * @param note one sentence saying which weights these are
     */
    public record CircuitWeights(Weights weights, boolean linearised, String note) {
    }

    public static CircuitWeights circuitWeights(Weights w) {
        if (!w.cfg.layerNorm()) {
            return new CircuitWeights(w, false, "no LayerNorm: circuits read the raw weights and are exact for "
                    + "layer 0 (the residual stream is W_E[tok] + W_pos[pos])");
        }
        Weights folded = WeightProcessing.centerWritingWeights(WeightProcessing.foldLn(w).weights()).weights();
        return new CircuitWeights(folded, true, "LayerNorm model: circuits read the weights after fold_ln and "
                + "center_writing_weights, and drop LNPre's division by the residual norm, so they are a "
                + "linearisation of the model (proportional per position, not equal, to its scores and logits)");
    }

    static void requireSameVocab(ModelConfig cfg, dev.trilens.data.TrigramDataset data) {
        if (data != null && data.dVocab() != cfg.dVocab()) {
            throw new TrilensException("the dataset's d_vocab " + data.dVocab() + " differs from the model's "
                    + cfg.dVocab());
        }
    }

    static void requireLayerHead(ModelConfig cfg, int layer, int head) {
        if (layer < 0 || layer >= cfg.nLayers() || head < 0 || head >= cfg.nHeads()) {
            throw new TrilensException("no head L" + layer + "H" + head + " in a model with " + cfg.nLayers()
                    + " layer(s) of " + cfg.nHeads() + " head(s)");
        }
    }
}
