package dev.trilens.sweep;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import java.nio.file.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.Function;

/**
 * A Spark task: one run of the sweep ({@link SweepRun#execute}) with spark.task.cpus threads. A failed attempt is
 * thrown to Spark, which retries it (the retry resumes from the run's checkpoint), except the last one the sweep
 * allows: that one comes back as an outcome with an error, so the other runs of the job go on and the driver can
 * name the run that failed.
 */
final class SweepTask implements Function<Grid.Run, String> {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a task sends back to the driver, as JSON: the result, or the error of its last attempt. */
    record Outcome(String runId, RunResult result, String error) {
    }

    private final String out;
    private final int threads;
    private final int maxAttempts;
    private final SweepRun.Injection inject;

    SweepTask(Path out, int threads, int maxAttempts, SweepRun.Injection inject) {
        this.out = out.toAbsolutePath().toString();
        this.threads = threads;
        this.maxAttempts = maxAttempts;
        this.inject = inject;
    }

    @Override
    public String call(Grid.Run run) throws JsonProcessingException {
        TaskContext task = TaskContext.get();
        int attempt = task == null ? 0 : task.attemptNumber();
        SparkEnv env = SparkEnv.get();
        String host = env == null ? "driver" : env.blockManager().blockManagerId().host() + " (executor "
                + env.executorId() + ")";
        try {
            return JSON.writeValueAsString(new Outcome(run.id(), SweepRun.execute(Path.of(out), run, threads, attempt,
                    inject, host), null));
        } catch (RuntimeException | Error e) {
            if (attempt + 1 < maxAttempts) {
                throw e;
            }
            return JSON.writeValueAsString(new Outcome(run.id(), null, e instanceof TrilensException ? e.getMessage()
                    : e.toString()));
        }
    }
}
