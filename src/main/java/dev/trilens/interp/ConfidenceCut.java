package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import java.util.Arrays;

/**
 * Where a list of confidences is cut: those above {@code value} are kept. {@link TrigramExtractor} cuts the pairs'
 * P(c) with {@link #widestGap} (or a fixed {@link #threshold}) and the bigram defaults' median P(c) with
 * {@link #otsuLog}; all three are defined on every input, NaN included.
 *
 * @param value keep what is strictly above this
 * @param gapLow the gap the cut sits in, its lower edge: the highest confidence at or below the cut (with the
 *               label-free rules, 1/d_vocab when the gap starts at the uniform floor); NaN when there is none
 * @param gapHigh its upper edge: the lowest confidence kept; NaN when none is kept
 * @param rule {@link #RULE_WIDEST_GAP} (the label-free cut of the trigrams), {@link #RULE_OTSU_LOG} (the
 *             label-free cut of the bigram defaults) or {@link #RULE_THRESHOLD} (a fixed threshold)
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record ConfidenceCut(double value, double gapLow, double gapHigh, String rule) {

    /** {@link #rule()} of the label-free cut of the trigrams. */
    public static final String RULE_WIDEST_GAP = "widest_gap";
    /** {@link #rule()} of the bigram defaults' label-free cut. */
    public static final String RULE_OTSU_LOG = "otsu_log";
    /** {@link #rule()} of a fixed threshold. */
    public static final String RULE_THRESHOLD = "threshold";
    /** Confidences within this relative distance of 1/d_vocab are float rounding of a uniform distribution. */
    static final double UNIFORM_TOLERANCE = 1e-6;
    /** The widest-gap cut keeps nothing below this many times uniform: less is not a learned prediction. */
    public static final double MIN_KEPT_RATIO = 2;

    /** gapHigh - gapLow: how far the cut could move without changing what is kept (NaN when an edge is). */
    public double gapWidth() {
        return gapHigh - gapLow;
    }

    /** Whether a confidence is kept: NaN never is. */
    public boolean keeps(double confidence) {
        return confidence > value;
    }

    /**
     * The cut in words, e.g. "P(c) > 0.4822 (the middle of the widest gap of the P(c) above 1/d_vocab: 0.03015 to
     * 0.9342)"; {@code what} names the confidences, dVocab gives the uniform level.
     */
    public String describe(String what, int dVocab) {
        boolean none = Double.isNaN(gapLow) && Double.isNaN(gapHigh);
        String gap = none ? "none above 1/d_vocab" : String.format("%.4g to %.4g", gapLow, gapHigh);
        String sides = none ? "none above 1/d_vocab" : String.format("%.4g and %.4g", gapLow, gapHigh);
        return switch (rule) {
            case RULE_WIDEST_GAP -> Double.isNaN(gapHigh) && !none
                    ? String.format("%s > %.4g (none is %.0f times uniform or more, so none stands out)", what, value,
                    MIN_KEPT_RATIO)
                    : String.format("%s > %.4g (the middle of the widest gap of the %s above 1/d_vocab: %s)", what,
                    value, what, gap);
            case RULE_OTSU_LOG -> String.format("%s > %.4g, %.3g x uniform (Otsu's two-class split of log(d_vocab * "
                    + "%s) above 1/d_vocab, between %s)", what, value, value * dVocab, what, sides);
            default -> String.format("%s > %s (a fixed threshold; the nearest %s on either side: %s)", what, value,
                    what, sides);
        };
    }

    /**
     * The label-free cut of a list of confidences (probabilities of an argmax, so at least 1/d_vocab each): the
     * values above 1/d_vocab, with 1/d_vocab itself as the lowest point, are sorted, and the cut goes in the middle
     * of the widest gap between neighbours whose upper side is at least {@link #MIN_KEPT_RATIO} times uniform (ties:
     * the higher gap, which keeps fewer). Everything above the gap is kept; with no such gap, nothing is. Values within float rounding ({@link #UNIFORM_TOLERANCE}, relative) of 1/d_vocab count as uniform, and
     * NaN or infinite ones are ignored, so a model with NaN weights keeps nothing and the sort always terminates.
     *
     * <p>When no value is above 1/d_vocab nothing is kept: the cut is 1/d_vocab (raised by that rounding margin, so
     * a float rounded up from 1/d_vocab is not kept either) and both gap edges are NaN. When exactly one is, the
     * only gap runs from 1/d_vocab to it, and it is kept: every other pair is uniform.
     */
    public static ConfidenceCut widestGap(float[] confidences, int dVocab) {
        double[] v = points(confidences, dVocab);
        int n = v.length;
        if (n == 1) {
            return new ConfidenceCut(v[0] * (1 + UNIFORM_TOLERANCE), Double.NaN, Double.NaN, RULE_WIDEST_GAP);
        }
        // a gap whose upper side is below twice uniform only splits noise: an untrained model's argmax confidences
        // all sit a little above 1/d_vocab, and the gap from 1/d_vocab to the lowest of them would keep every pair
        double minKept = MIN_KEPT_RATIO / dVocab;
        int best = -1;
        for (int i = 0; i + 1 < n; i++) {
            if (v[i + 1] >= minKept && (best < 0 || v[i + 1] - v[i] >= v[best + 1] - v[best])) {
                best = i;
            }
        }
        if (best < 0) {
            return new ConfidenceCut(v[n - 1], v[n - 1], Double.NaN, RULE_WIDEST_GAP);
        }
        return new ConfidenceCut((v[best] + v[best + 1]) / 2, v[best], v[best + 1], RULE_WIDEST_GAP);
    }

    /**
     * The label-free cut of the bigram defaults: their confidences are a few times 1/d_vocab with no wide gap between
     * the learned bumps and the noise, so instead of the widest gap this is Otsu's threshold (the split into a low and
     * a high class with the largest between-class variance) of log(d_vocab * confidence), i.e. of nats above
     * uniform, which puts bumps of 1.3x and 2x uniform as far apart as 2x and 4x. The points and their edge cases
     * are those of {@link #widestGap}: values above 1/d_vocab with 1/d_vocab itself as the lowest point (nothing
     * above it: nothing kept; one: it is kept), NaN and infinities ignored; ties go to the higher split. The cut is
     * the middle of the two values either side of the split.
     */
    public static ConfidenceCut otsuLog(float[] confidences, int dVocab) {
        double[] v = points(confidences, dVocab);
        int n = v.length;
        if (n == 1) {
            return new ConfidenceCut(v[0] * (1 + UNIFORM_TOLERANCE), Double.NaN, Double.NaN, RULE_OTSU_LOG);
        }
        double total = 0;
        for (double x : v) {
            total += Math.log(dVocab * x);
        }
        double lowSum = 0, bestScore = -1;
        int best = 1;
        for (int i = 1; i < n; i++) {
            lowSum += Math.log(dVocab * v[i - 1]);
            if (v[i] == v[i - 1]) {
                continue; // no cut separates equal values
            }
            double lowMean = lowSum / i, highMean = (total - lowSum) / (n - i);
            double score = (double) i * (n - i) * (highMean - lowMean) * (highMean - lowMean);
            if (score >= bestScore) {
                bestScore = score;
                best = i;
            }
        }
        return new ConfidenceCut((v[best - 1] + v[best]) / 2, v[best - 1], v[best], RULE_OTSU_LOG);
    }

    /** A fixed threshold as a cut: its gap edges are the nearest confidences on either side (NaN if none). */
    public static ConfidenceCut threshold(float[] confidences, double threshold) {
        double lo = Double.NaN, hi = Double.NaN;
        for (float x : confidences) {
            if (x > threshold) {
                hi = Double.isNaN(hi) ? x : Math.min(hi, x);
            } else if (x <= threshold) {
                lo = Double.isNaN(lo) ? x : Math.max(lo, x);
            }
        }
        return new ConfidenceCut(threshold, lo, hi, RULE_THRESHOLD);
    }

    /** 1/d_vocab, then the finite confidences above it by more than float rounding, sorted ascending. */
    private static double[] points(float[] confidences, int dVocab) {
        double floor = 1.0 / dVocab, above = floor * (1 + UNIFORM_TOLERANCE);
        double[] v = new double[confidences.length + 1];
        int n = 0;
        v[n++] = floor;
        for (float x : confidences) {
            if (Double.isFinite(x) && x > above) {
                v[n++] = x;
            }
        }
        v = Arrays.copyOf(v, n);
        Arrays.sort(v);
        return v;
    }
}
