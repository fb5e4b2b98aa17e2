package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens serve` through Main.execute: its flags, its start-up line, and stopping. */
class ServeCommandTest extends CliTestBase {

    @TempDir
    Path tmp;

    private Path smallModel(String name, int seed) {
        Path p = tmp.resolve(name);
        Safetensors.write(Weights.init(new ModelConfig(12, 8, 16, 1, 1, 8, 8, false), seed), Map.of(), p);
        return p;
    }

    @Test
    void badFlagsAreOneLineErrors() {
        String m = smallModel("a.safetensors", 1).toString();
        assertOneLineErrorOnly(2, "--port must be 0..65535, got 70000", "serve", "--model", m, "--port", "70000");
        assertOneLineErrorOnly(2, "--host must not be empty", "serve", "--model", m, "--host", " ");
        assertOneLineErrorOnly(2, "Missing required option: '--model", "serve");
        assertOneLineErrorOnly(1, "trilens: error:", "serve", "--model", tmp.resolve("none.pt").toString());
    }

    @Test
    void printsWhereItListensAndAnswersUntilStopped() throws Exception {
        String a = smallModel("a.safetensors", 1).toString(), b = smallModel("b.safetensors", 2).toString();
        int[] code = {-1};
        Thread t = new Thread(() -> code[0] = run("serve", "--model", a, "--model-b", b, "--port", "0", "--size",
                "20"));
        t.start();
        Matcher m = null;
        for (int i = 0; i < 600 && (m == null || !m.find()); i++) {
            Thread.sleep(100);
            m = Pattern.compile("listening on (http://127\\.0\\.0\\.1:\\d+)\\n").matcher(out());
        }
        assertThat(m.find(0)).as(out() + err()).isTrue();
        String url = m.group(1);
        assertThat(out()).doesNotContain("warning").contains("model a    " + a).contains("model b    " + b);
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url
                + "/api/model")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).contains("\"name\":\"a.safetensors\"").contains("\"name\":\"b.safetensors\"");
        t.interrupt();
        t.join(30_000);
        assertThat(t.isAlive()).isFalse();
        assertThat(code[0]).isZero();
        assertThat(out()).endsWith("stopped\n");
    }

    @Test
    void onlyLoopbackNamesCountAsLocal() {
        assertThat(ServeCommand.isLoopback("127.0.0.1")).isTrue();
        assertThat(ServeCommand.isLoopback("LOCALHOST")).isTrue();
        assertThat(ServeCommand.isLoopback("::1")).isTrue();
        assertThat(ServeCommand.isLoopback("0.0.0.0")).isFalse();
        assertThat(ServeCommand.isLoopback("192.168.1.2")).isFalse();
    }
}
