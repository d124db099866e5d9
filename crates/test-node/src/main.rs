fn main() { eprintln!("claude-k8s-test-node: not written yet"); std::process::exit(2); }
