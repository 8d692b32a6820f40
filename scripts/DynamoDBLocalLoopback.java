// Starts DynamoDB Local bound to one address (default 127.0.0.1) instead of every interface.
//
// DynamoDB Local has no host option: its Jetty server listens on 0.0.0.0. This launcher builds
// the server exactly as DynamoDB Local's own main does (same command-line arguments), sets the
// host on its connectors, then starts it. Only reflection is used, so it runs as a single source
// file (`java -cp DynamoDBLocal.jar DynamoDBLocalLoopback.java -port 8000 ...`) without a build.
// Telemetry is never configured, so none is sent. Host: system property `ddb.host`.
import java.lang.reflect.Field;
import java.lang.reflect.Method;

public class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("ddb.host", "127.0.0.1");
        Class<?> runner = Class.forName("software.amazon.dynamodb.services.local.main.ServerRunner");
        Object proxy = runner.getMethod("createServerFromCommandLineArgs", String[].class)
                .invoke(null, (Object) args);
        Field serverField = proxy.getClass().getDeclaredField("server");
        serverField.setAccessible(true);
        Object server = serverField.get(proxy);
        Object[] connectors = (Object[]) server.getClass().getMethod("getConnectors").invoke(server);
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local server has no connectors");
        }
        for (Object connector : connectors) {
            Method setHost = connector.getClass().getMethod("setHost", String.class);
            setHost.invoke(connector, host);
        }
        proxy.getClass().getMethod("start").invoke(proxy);
    }
}
