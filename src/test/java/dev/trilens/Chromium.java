package dev.trilens;

import java.io.File;
import java.nio.file.Path;
import java.time.Duration;
import java.util.logging.Level;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.logging.LoggingPreferences;

/** The browser tests' Debian chromium: headless, no network of its own, its console kept for SEVERE checks. */
public final class Chromium {
    private static final File BROWSER = new File("/usr/bin/chromium"), DRIVER = new File("/usr/bin/chromedriver");

    private Chromium() {
    }

    /**
     * A driver on a fresh profile in profileDir. Skips the calling test where chromium or its driver is missing, and
     * fails it under CI=true (.ci/run installs them).
     */
    public static ChromeDriver start(Path profileDir, int width, int height) {
        Fixtures.require(BROWSER.canExecute() && DRIVER.canExecute(), "Debian's chromium and chromium-driver are not "
                + "installed at /usr/bin (apt-get install -y chromium chromium-driver); .ci/run installs them");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(BROWSER);
        options.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=" + width + "," + height, "--user-data-dir=" + profileDir);
        LoggingPreferences logs = new LoggingPreferences();
        logs.enable(LogType.BROWSER, Level.ALL);
        options.setCapability("goog:loggingPrefs", logs);
        ChromeDriver driver = new ChromeDriver(new ChromeDriverService.Builder().usingDriverExecutable(DRIVER).build(),
                options);
        driver.manage().timeouts().pageLoadTimeout(Duration.ofSeconds(60));
        return driver;
    }
}
