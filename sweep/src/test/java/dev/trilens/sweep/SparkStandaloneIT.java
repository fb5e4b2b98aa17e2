package dev.trilens.sweep;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A sweep on a real Spark standalone cluster: a master and a worker (2 cores) started on 127.0.0.1 from the Maven
 * jars (sweep/target/spark.classpath), the sweep run once as `./trilens sweep --master spark://...` and once by
 * spark-submit of the sweep jar. Runs in `verify` with the spark-cluster profile (after the jar is built):
 * {@code mvn -B -ntp -f all.xml verify -Pspark-cluster}.
 */
class SparkStandaloneIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path TARGET = Path.of("target").toAbsolutePath();

    @TempDir
    Path tmp;

    private final List<Process> cluster = new ArrayList<>();

    @AfterEach
    void stopCluster() throws InterruptedException {
        for (Process p : cluster) {
            p.destroy();
            p.waitFor();
        }
    }

    @Test
    void aGridRunsOnAStandaloneMasterAndWorkerByMasterFlagAndBySparkSubmit() throws Exception {
        Path jar = TARGET.resolve("trilens-sweep.jar");
        assertThat(jar).as("built by the package phase before this test").isRegularFile();
        String sparkJars = Files.readString(TARGET.resolve("spark.classpath")).strip();
        List<String> jvm = Arrays.asList(Files.readString(TARGET.resolve("spark-jvm.args")).strip().split(" "));
        int masterPort = freePort();
        String master = "spark://127.0.0.1:" + masterPort;
        int masterUi = freePort();
        // a Spark home with no jars of its own: the worker's executors get Spark from the Maven jars
        Path home = Files.createDirectories(tmp.resolve("spark-home"));
        Files.createDirectories(home.resolve("jars"));
        Files.writeString(home.resolve("RELEASE"), "Spark from Maven jars, for a test\n");
        Map<String, String> env = Map.of("SPARK_HOME", home.toString(), "SPARK_SCALA_VERSION", "2.13",
                "SPARK_DIST_CLASSPATH", sparkJars, "SPARK_LOCAL_IP", "127.0.0.1");
        start("master", jvm, sparkJars, env, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                "--port", String.valueOf(masterPort), "--webui-port", String.valueOf(masterUi));
        start("worker", jvm, sparkJars, env, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                "--port", String.valueOf(freePort()), "--webui-port", String.valueOf(freePort()), "--cores", "2",
                "--memory", "2g", "--work-dir", tmp.resolve("work").toString(), master);
        awaitWorker(masterUi);

        Path grid = tmp.resolve("g.yaml");
        Files.writeString(grid, "preset: quick\ntrain: {epochs: 2}\naxes: {d_mlp: [0, 20], init_seed: [0, 1]}\n");
        Path byMaster = tmp.resolve("by-master"), bySubmit = tmp.resolve("by-submit");
        // ./trilens sweep with only --master changed: the launcher ships its jar to the executors
        run("launcher", env, List.of(Path.of("..", "trilens").toAbsolutePath().normalize().toString(), "sweep",
                "--grid", grid.toString(), "--out", byMaster.toString(), "--master", master, "--conf",
                "spark.executor.memory=1g"));
        // spark-submit of the sweep jar (SparkSubmit from the Maven jars stands in for bin/spark-submit)
        List<String> submit = new ArrayList<>(List.of(java()));
        submit.addAll(jvm);
        submit.addAll(List.of("-cp", sparkJars, "org.apache.spark.deploy.SparkSubmit", "--master", master,
                "--class", SweepMain.class.getName(), "--conf", "spark.executor.memory=1g", jar.toString(),
                "--grid", grid.toString(), "--out", bySubmit.toString()));
        run("spark-submit", env, submit);

        List<Map<String, String>> a = SparkSweepTest.csv(byMaster.resolve("results.csv"));
        List<Map<String, String>> b = SparkSweepTest.csv(bySubmit.resolve("results.csv"));
        assertThat(a).hasSize(4);
        for (Path out : List.of(byMaster, bySubmit)) {
            for (Map<String, String> row : a) {
                JsonNode r = JSON.readTree(out.resolve("runs").resolve(row.get("run_id")).resolve("result.json")
                        .toFile());
                assertThat(r.get("host").asText()).as("trained on the worker's executor, not in the driver")
                        .startsWith("127.0.0.1 (executor ").doesNotContain("driver");
                assertThat(r.get("kernels").asText()).as("the executor got jdk.incubator.vector").isEqualTo("vector");
            }
        }
        for (int i = 0; i < a.size(); i++) {
            for (String c : List.of("run_id", "trigram_n_correct", "trigram_avg_correct_prob", "loss", "n_extracted")) {
                assertThat(b.get(i).get(c)).as(c).isEqualTo(a.get(i).get(c));
            }
        }
    }

    private static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    private void start(String name, List<String> jvm, String cp, Map<String, String> env, String main,
                       String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(java()));
        cmd.addAll(jvm);
        cmd.addAll(List.of("-cp", cp, main));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(tmp.resolve(name + ".log").toFile());
        pb.environment().putAll(env);
        cluster.add(pb.start());
    }

    private void run(String name, Map<String, String> env, List<String> cmd) throws Exception {
        Path log = tmp.resolve(name + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        assertThat(p.waitFor()).as("%s:%n%s", name, Files.readString(log)).isZero();
    }

    /** Waits until the master's status page lists an alive worker. */
    private void awaitWorker(int masterUi) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        long deadline = System.nanoTime() + 180_000_000_000L;
        while (System.nanoTime() < deadline) {
            try {
                String body = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + masterUi + "/json/"))
                        .build(), HttpResponse.BodyHandlers.ofString()).body();
                if (JSON.readTree(body).path("aliveworkers").asInt() > 0) {
                    return;
                }
            } catch (IOException e) {
                // not listening yet
            }
            Thread.sleep(500);
        }
        throw new AssertionError("no worker registered with the master within 3 minutes:\n"
                + Files.readString(tmp.resolve("master.log")) + "\n" + Files.readString(tmp.resolve("worker.log")));
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
