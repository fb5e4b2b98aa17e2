package dev.trilens.model;

/** Reading a row of logits: the prediction and the log-probability of a token. */
public final class Logits {
    private Logits() {
    }

    /** log softmax(row)[target], in double so a confident model's loss does not round to zero. */
    public static double logProb(float[] logits, int rowOff, int V, int target) {
        double max = max(logits, rowOff, V);
        return logits[rowOff + target] - max - Math.log(sumExp(logits, rowOff, V, max));
    }

    /** log softmax of each row of V logits (x - logsumexp(row)), into out. */
    public static void logSoftmax(float[] logits, int V, float[] out) {
        for (int row = 0; row < logits.length; row += V) {
            double max = max(logits, row, V);
            double lse = max + Math.log(sumExp(logits, row, V, max));
            for (int v = 0; v < V; v++) {
                out[row + v] = (float) (logits[row + v] - lse);
            }
        }
    }

    /** softmax of the row logits[rowOff..rowOff + V) into probs[0..V), in double. */
    public static void softmax(float[] logits, int rowOff, int V, double[] probs) {
        double max = max(logits, rowOff, V);
        double sum = 0;
        for (int v = 0; v < V; v++) {
            probs[v] = Math.exp(logits[rowOff + v] - max);
            sum += probs[v];
        }
        for (int v = 0; v < V; v++) {
            probs[v] /= sum;
        }
    }

    private static double max(float[] logits, int rowOff, int V) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < V; i++) {
            max = Math.max(max, logits[rowOff + i]);
        }
        return max;
    }

    private static double sumExp(float[] logits, int rowOff, int V, double max) {
        double sum = 0;
        for (int i = 0; i < V; i++) {
            sum += Math.exp(logits[rowOff + i] - max);
        }
        return sum;
    }

    /** First index of the largest value, as torch.argmax does. */
    public static int argmax(float[] values, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (values[off + i] > values[off + best]) {
                best = i;
            }
        }
        return best;
    }
}
