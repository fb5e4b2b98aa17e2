package dev.trilens.train;

/**
 * The challenge's learning rate: set at the start of each epoch e (0-based) to
 * lrStart + (lrEnd - lrStart) * (e + 1) / epochs, so the first epoch already steps towards lrEnd and the last one
 * runs at exactly lrEnd.
 */
public record LrSchedule(double lrStart, double lrEnd, int epochs) {

    public LrSchedule {
        if (epochs < 1) {
            throw new IllegalArgumentException("epochs must be >= 1, got " + epochs);
        }
    }

    public double lr(int epoch) {
        return lrStart + (lrEnd - lrStart) * (epoch + 1) / epochs;
    }
}
