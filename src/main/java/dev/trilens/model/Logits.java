package dev.trilens.model;

/** Reading a row of logits: the prediction and the log-probability of a token. */
public final class Logits {
    private Logits() {
    }

    /** log softmax(row)[target], in double so a confident model's loss does not round to zero. */
    public static double logProb(float[] logits, int rowOff, int V, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < V; i++) {
            max = Math.max(max, logits[rowOff + i]);
        }
        double sum = 0;
        for (int i = 0; i < V; i++) {
            sum += Math.exp(logits[rowOff + i] - max);
        }
        return logits[rowOff + target] - max - Math.log(sum);
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
