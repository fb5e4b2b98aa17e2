package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.List;

/**
 * How two models' static pictures differ: the trigram tables extracted from their weights (learned by one, not the
 * other) and the element-wise correlation of each weight matrix (when the shapes match). For `serve --model-b`.
 *
 * <p>JSON keys: {@code n_a}, {@code n_b} (extracted trigrams), {@code n_both} (the same (a, b, c) in both),
 * {@code only_a} / {@code only_b} (learned by one: the other has no rule for (a, b), or another c, as
 * {@code other_c}; -1 for none), {@code same_shape}, {@code correlations} (per parameter; empty when the shapes
 * differ), {@code summary}.
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record ModelDiff(int nA, int nB, int nBoth, List<ModelDiff.TableEntry> onlyA, List<ModelDiff.TableEntry> onlyB,
                        boolean sameShape, List<ModelDiff.ParamCorrelation> correlations, String summary) {

    /** An entry of one model's trigram table and what the other model's table says for its prefix. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record TableEntry(int a, int b, int c, double confidence, int otherC) {
    }

    /** Element-wise Pearson correlation of one parameter in both models (null when either is constant). */
    public record ParamCorrelation(String name, int[] shape, Double correlation) {
    }

    public static ModelDiff of(Probe a, Probe b) {
        List<TableEntry> onlyA = only(a, b), onlyB = only(b, a);
        int nA = a.rules().trigrams().size(), nB = b.rules().trigrams().size();
        int both = nA - onlyA.size();
        boolean same = a.config().equals(b.config());
        List<ParamCorrelation> corr = new ArrayList<>();
        if (same) {
            Weights wa = a.model().weights(), wb = b.model().weights();
            for (ParamLayout.Param p : wa.layout.params()) {
                corr.add(new ParamCorrelation(p.name(), p.shape(), pearson(wa.data, wb.data, p.offset(), p.size())));
            }
        }
        String summary = String.format("A extracts %d trigrams, B %d; %d are in both, %d only in A, %d only in B%s",
                nA, nB, both, onlyA.size(), onlyB.size(), same ? "" : "; the two models have different shapes ("
                        + a.config() + " vs " + b.config() + "), so their weights are not compared");
        return new ModelDiff(nA, nB, both, onlyA, onlyB, same, corr, summary);
    }

    private static List<TableEntry> only(Probe x, Probe y) {
        List<TableEntry> out = new ArrayList<>();
        for (TrigramExtractor.Entry e : x.rules().trigrams()) {
            int yc = e.a() < y.config().dVocab() && e.b() < y.config().dVocab() ? y.ruleFor(e.a(), e.b()) : -1;
            if (yc != e.c()) {
                out.add(new TableEntry(e.a(), e.b(), e.c(), e.confidence(), yc));
            }
        }
        return out;
    }

    private static Double pearson(float[] x, float[] y, int off, int n) {
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++) {
            mx += x[off + i];
            my += y[off + i];
        }
        mx /= n;
        my /= n;
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++) {
            double dx = x[off + i] - mx, dy = y[off + i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        return sxx == 0 || syy == 0 ? null : sxy / Math.sqrt(sxx * syy);
    }
}
