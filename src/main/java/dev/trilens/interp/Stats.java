package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import java.util.Arrays;

/** Statistics the analyses share: how well a score separates two classes (ROC AUC), the F1-best threshold, top-k. */
public final class Stats {
    private Stats() {
    }

    /**
     * ROC AUC of scores for telling positives from negatives, from ranks (the Mann-Whitney U statistic): the
     * probability that a random positive scores above a random negative, ties counting one half. NaN when either
     * class is empty.
     */
    public static double rocAuc(double[] scores, boolean[] positive) {
        int nPos = 0;
        for (boolean p : positive) {
            nPos += p ? 1 : 0;
        }
        int nNeg = scores.length - nPos;
        if (nPos == 0 || nNeg == 0) {
            return Double.NaN;
        }
        // each class sorted on its own (primitive sorts, in Double.compare's order: NaN last and tied with NaN), then
        // merged: U counts, for every positive, the negatives below it and half of those equal to it
        double[] pos = new double[nPos], neg = new double[nNeg];
        for (int i = 0, ip = 0, in = 0; i < scores.length; i++) {
            if (positive[i]) {
                pos[ip++] = scores[i];
            } else {
                neg[in++] = scores[i];
            }
        }
        Arrays.sort(pos);
        Arrays.sort(neg);
        double u = 0;
        int below = 0, upTo = 0; // neg[0..below) < the current positive <= neg[below..upTo) equal to it
        for (double x : pos) {
            while (below < nNeg && Double.compare(neg[below], x) < 0) {
                below++;
            }
            upTo = Math.max(upTo, below);
            while (upTo < nNeg && Double.compare(neg[upTo], x) == 0) {
                upTo++;
            }
            u += below + (upTo - below) / 2.0;
        }
        return u / ((double) nPos * nNeg);
    }

    /**
     * The threshold t maximising F1 for the rule "score >= t is positive", over the distinct scores, with precision
     * and recall there. Null when there are no positives.
     */
    public static BestThreshold bestThreshold(double[] scores, boolean[] positive) {
        int n = scores.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(scores[y], scores[x]));
        int nPos = 0;
        for (boolean p : positive) {
            nPos += p ? 1 : 0;
        }
        if (nPos == 0) {
            return null;
        }
        BestThreshold best = null;
        int tp = 0;
        for (int i = 0; i < n; ) {
            int j = i;
            // Double.compare, not ==: with ==, a NaN score never joins its own group and i never advances
            while (j < n && Double.compare(scores[order[j]], scores[order[i]]) == 0) {
                tp += positive[order[j]] ? 1 : 0;
                j++;
            }
            double precision = (double) tp / j, recall = (double) tp / nPos;
            double f1 = tp == 0 ? 0 : 2 * precision * recall / (precision + recall);
            if (best == null || f1 > best.f1) {
                best = new BestThreshold(scores[order[i]], precision, recall, f1, j);
            }
            i = j;
        }
        return best;
    }

    /** The F1-best rule "score >= threshold", with how many pairs it selects. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record BestThreshold(double threshold, double precision, double recall, double f1, int nSelected) {
    }

    // means over the entries a mask selects

    static int count(boolean[] mask) {
        int n = 0;
        for (boolean b : mask) {
            n += b ? 1 : 0;
        }
        return n;
    }

    /** Mean of v where prefix holds and learned does not. */
    static double meanWhere(double[] v, boolean[] prefix, boolean[] learned) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < v.length; i++) {
            if (prefix[i] && !learned[i]) {
                s += v[i];
                n++;
            }
        }
        return n == 0 ? 0 : s / n;
    }

    static double mean(double[] v, boolean[] mask, boolean want) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < v.length; i++) {
            if (mask == null || mask[i] == want) {
                s += v[i];
                n++;
            }
        }
        return n == 0 ? 0 : s / n;
    }

    static double fracPositive(double[] v, boolean[] mask, boolean want, double above) {
        int pos = 0, n = 0;
        for (int i = 0; i < v.length; i++) {
            if (mask[i] == want) {
                n++;
                pos += v[i] > above ? 1 : 0;
            }
        }
        return n == 0 ? 0 : (double) pos / n;
    }

    /** The indices of the k largest values, largest first; ties keep the lower index first (a stable sort). */
    static int[] topK(double[] v, int k) {
        Integer[] idx = new Integer[v.length];
        for (int i = 0; i < v.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (x, y) -> Double.compare(v[y], v[x]));
        int[] out = new int[k];
        for (int i = 0; i < k; i++) {
            out[i] = idx[i];
        }
        return out;
    }

    /** {@link #topK(double[], int)} of floats (each widened exactly, so the order is the same). */
    static int[] topK(float[] v, int k) {
        double[] wide = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            wide[i] = v[i];
        }
        return topK(wide, k);
    }
}
