package dev.trilens.interp;

import dev.trilens.data.TrigramDataset;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** The QK circuit's findings for one head, in sentences: what {@link QkCircuit#summary()} says. */
final class QkSummary {
    private QkSummary() {
    }

    static List<String> of(QkCircuit.Head head, int[] positions, TrigramDataset data) {
        List<String> out = new ArrayList<>();
        String where = "p = " + positions[0] + ".." + positions[positions.length - 1];
        String exact = head.exact()
                ? String.format("parts sum to the model's scores (max error %.1e)", head.maxAbsErrorVsModel())
                : String.format("parts are not the model's scores (max difference %.3g; see weights_note)",
                head.maxAbsErrorVsModel());
        out.add(head.name() + " QK: " + exact + "; top singular values of W_Q W_K^T "
                + top(head.qkSingularValues(), 3));
        QkCircuit.Separation s = head.separation();
        if (s == null) {
            out.add(head.name() + " QK: " + (data == null ? "dataset unknown" : "the dataset has no trigrams")
                    + ", so the prefix advantage's separation of trigram prefixes is not measured");
            return out;
        }
        out.add(String.format("%s QK: the prefix score advantage (attend X at p-1 rather than itself, mean over %s) "
                        + "separates the %d trigram prefixes from the %d other pairs with AUC %.4f; best threshold "
                        + "%.3f: precision %.3f, recall %.3f (F1 %.3f)", head.name(), where, s.nPrefixes(), s.nOther(),
                s.auc(), s.best() == null ? Double.NaN : s.best().threshold(),
                s.best() == null ? Double.NaN : s.best().precision(),
                s.best() == null ? Double.NaN : s.best().recall(), s.best() == null ? Double.NaN : s.best().f1()));
        out.add(String.format("%s QK: mean advantage %.3f for prefixes (%.1f%% > 0, i.e. the previous token outscores "
                        + "the current one) vs %.3f for other pairs (%.1f%% > 0)", head.name(), s.meanPrefix(),
                100 * s.fracPositivePrefix(), s.meanOther(), 100 * s.fracPositiveOther()));
        if (s.nLearned() > 0 && s.nLearned() < s.nPrefixes() + s.nOther()) {
            out.add(String.format("%s QK: the model has learned %d of the %d prefixes (probability of c > %.2f at the "
                            + "b of [a, b, c]); the advantage separates those from all other pairs with AUC %.4f (mean "
                            + "advantage %.3f learned vs %.3f for the %d unlearned prefixes)", head.name(),
                    s.nLearned(), s.nPrefixes(), s.learnedProb(), s.aucLearned(), s.meanLearned(), s.meanNotLearned(),
                    s.nPrefixes() - s.nLearned()));
        }
        out.add(String.format("%s QK: expected attention to the previous token (mean-field: earlier keys random "
                        + "tokens) is %.3f for prefixes (%.1f%% > %.2f) vs %.3f for other pairs (%.1f%% > %.2f); "
                        + "AUC %.4f",
                head.name(), s.meanExpectedAttentionPrefix(), 100 * s.fracExpectedAttentionAbovePrefix(),
                s.threshold(), s.meanExpectedAttentionOther(), 100 * s.fracExpectedAttentionAboveOther(),
                s.threshold(), s.aucExpectedAttention()));
        StringBuilder sb = new StringBuilder(head.name() + " QK: components (prefix vs other mean, AUC):");
        for (QkCircuit.Component c : head.components()) {
            sb.append(String.format(" %s %.3f vs %.3f%s;", c.name(), c.meanPrefix(), c.meanOther(),
                    c.auc() == null ? "" : String.format(" (AUC %.3f)", c.auc())));
        }
        out.add(sb.substring(0, sb.length() - 1));
        double[] pos = head.positionalAdvantageByPosition();
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        int argMin = -1, argMax = -1;
        for (int p : positions) {
            if (pos[p] < min) {
                min = pos[p];
                argMin = p;
            }
            if (pos[p] > max) {
                max = pos[p];
                argMax = p;
            }
        }
        StringBuilder outside = new StringBuilder();
        Set<Integer> averaged = new HashSet<>();
        for (int p : positions) {
            averaged.add(p);
        }
        // the positions left out of the average (with the defaults, p = 1 and the last one) can stand out
        for (int p = 1; p < pos.length && pos.length - 1 - averaged.size() <= 5; p++) {
            if (!averaged.contains(p)) {
                outside.append(outside.length() == 0 ? "; outside that range: " : ", ")
                        .append(String.format("%.3f at p=%d", pos[p], p));
            }
        }
        out.add(String.format("%s QK: the positional (token-independent) term favours the previous token over the "
                        + "current one by %.3f on average over %s (min %.3f at p=%d, max %.3f at p=%d)%s", head.name(),
                head.components().get(3).meanAll() + head.components().get(5).meanAll(), where, min, argMin, max,
                argMax, outside));
        return out;
    }

    private static String top(double[] v, int k) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < Math.min(k, v.length); i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format("%.3f", v[i]));
        }
        return sb.append(v.length > k ? ", ...]" : "]").toString();
    }

    /** mask[a * V + b] = (a, b) is a trigram prefix of the dataset. */
}
