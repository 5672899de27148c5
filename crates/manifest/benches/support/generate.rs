//! A realistic large stage for benchmarks: Deployments, Services, ConfigMaps and custom
//! resources, about 400 bytes of YAML each, as yq and easykubenix lay them out.

use std::fmt::Write as _;
use std::path::Path;

/// The namespace, kind, name and YAML text of object number `index`.
fn object(index: usize) -> (String, String, String, String) {
    let namespace = format!("team-{}", index % 50);
    let name = format!("app-{index}");
    let (kind, body) = match index % 4 {
        0 => (
            "Deployment",
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {name}\n    spec:\n      containers:\n        - name: main\n          image: registry.example.com/shop/{name}:1.{index}\n          args:\n            - --listen=:8080\n            - --log-format=json\n          ports:\n            - containerPort: 8080\n              name: http\n          resources:\n            limits:\n              memory: 256Mi\n            requests:\n              cpu: 100m\n              memory: 128Mi\n          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n"
            ),
        ),
        1 => (
            "Service",
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: {name}\nspec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n  selector:\n    app.kubernetes.io/name: {name}\n"
            ),
        ),
        2 => (
            "ConfigMap",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: \"checkout,search,recommendations\"\n  config.yaml: |\n    server:\n      port: 8080\n      timeout: 30s\n    upstream: http://{name}.{namespace}.svc:80\n"
            ),
        ),
        _ => (
            "MachineDeployment",
            format!(
                "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineDeployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    nodepool: {name}\nspec:\n  clusterName: shop\n  replicas: 1\n  selector: {{}}\n  template:\n    spec:\n      bootstrap:\n        configRef:\n          apiVersion: bootstrap.cluster.x-k8s.io/v1beta1\n          kind: KubeadmConfigTemplate\n          name: workers\n      clusterName: shop\n      version: v1.33.1\n"
            ),
        ),
    };
    (namespace, kind.to_owned(), name, body)
}

/// `count` objects as one multi-document stream.
pub(crate) fn stream(count: usize) -> String {
    let mut text = String::new();
    for index in 0..count {
        text.push_str("---\n");
        text.push_str(&object(index).3);
    }
    text
}

/// `count` objects as one YAML `List`.
pub(crate) fn list(count: usize) -> String {
    let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for index in 0..count {
        for (number, line) in object(index).3.lines().enumerate() {
            let prefix = if number == 0 { "  - " } else { "    " };
            let _ = writeln!(text, "{prefix}{line}");
        }
    }
    text
}

/// `count` objects as a GitOps tree, `<namespace>/<Kind>/<name>.yaml`, under `dir`.
pub(crate) fn tree(count: usize, dir: &Path) -> std::io::Result<()> {
    for index in 0..count {
        let (namespace, kind, name, body) = object(index);
        let folder = dir.join(namespace).join(kind);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("{name}.yaml")), body)?;
    }
    Ok(())
}
