//! `enableRtk` (contract §1.7 RTK, 0.1.54): before `claude` runs, install a
//! PostToolUse hook that truncates tool output over `rtkMaxOutputBytes`, so a
//! huge tool result cannot flood the context. Two steps, both `node -e`
//! programs passed through [`crate::shell::quote`]: write the filter to
//! `/tmp/.rtk-filter.js`, and merge the hook into `$HOME/.claude/settings.json`.
//!
//! The filter cuts on a UTF-8 character boundary (never in the middle of a
//! sequence) and appends `\n[...N bytes truncated by paperclip-rtk]`.

use crate::shell::quote;

/// Path of the filter inside the pod.
pub const FILTER_PATH: &str = "/tmp/.rtk-filter.js";

/// The filter program: reads the hook's JSON on stdin, prints it back with
/// `tool_response` / `tool_result` content truncated.
pub fn filter_source(max_bytes: i64) -> String {
    let max = max_bytes.max(0);
    format!(
        r#"const MAX={max};
const cut=(s)=>{{const b=Buffer.from(s,"utf8");if(b.length<=MAX)return s;let e=MAX;while(e>0&&(b[e]&0xc0)===0x80)e--;return b.subarray(0,e).toString("utf8")+"\n[..."+(b.length-e)+" bytes truncated by paperclip-rtk]";}};
const walk=(v)=>typeof v==="string"?cut(v):Array.isArray(v)?v.map(walk):v&&typeof v==="object"?Object.fromEntries(Object.entries(v).map(([k,x])=>[k,walk(x)])):v;
let d="";process.stdin.setEncoding("utf8");process.stdin.on("data",(c)=>d+=c);process.stdin.on("end",()=>{{try{{const j=JSON.parse(d);for(const k of ["tool_response","tool_result"])if(k in j)j[k]=walk(j[k]);process.stdout.write(JSON.stringify(j));}}catch{{process.stdout.write(d);}}}});
"#
    )
}

/// The settings merge program: adds the hook once, keeps every other setting.
fn settings_source() -> String {
    format!(
        r#"const fs=require("fs"),p=require("path");const f=p.join(process.env.HOME||"/paperclip",".claude","settings.json");
let s={{}};try{{s=JSON.parse(fs.readFileSync(f,"utf8"))}}catch{{}}
s.hooks=s.hooks||{{}};const h={{matcher:".*",hooks:[{{type:"command",command:"node {FILTER_PATH}"}}]}};
const list=Array.isArray(s.hooks.PostToolUse)?s.hooks.PostToolUse:[];
if(!list.some((x)=>JSON.stringify(x)===JSON.stringify(h)))list.push(h);s.hooks.PostToolUse=list;
fs.mkdirSync(p.dirname(f),{{recursive:true}});fs.writeFileSync(f,JSON.stringify(s,null,2));
"#
    )
}

/// `buildRtkSetupCommands`: shell commands to run before `claude`, joined with ` && `.
pub fn setup_commands(max_bytes: i64) -> Vec<String> {
    let write_filter = format!(
        "node -e {} {}",
        quote(&format!("require(\"fs\").writeFileSync({FILTER_PATH:?}, process.argv[1])")),
        quote(&filter_source(max_bytes))
    );
    vec![write_filter, format!("node -e {}", quote(&settings_source()))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn node_available() -> bool {
        Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    fn run_filter(max: i64, input: &str) -> String {
        let mut child = Command::new("node")
            .arg("-e")
            .arg(filter_source(max))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }

    #[test]
    fn commands_are_two_quoted_node_programs() {
        let cmds = setup_commands(1234);
        assert_eq!(cmds.len(), 2);
        assert!(cmds[0].starts_with("node -e '"));
        assert!(cmds[0].contains("const MAX=1234;"));
        assert!(cmds[1].contains("PostToolUse"));
    }

    #[test]
    fn filter_truncates_on_a_char_boundary() {
        if !node_available() {
            panic!("node is required for this test (it is the pod's runtime for the hook)");
        }
        // 'é' is two bytes: a cut at 5 bytes would split the third one.
        let out = run_filter(5, r#"{"tool_response":{"stdout":"ééé","n":1},"other":"éééééé"}"#);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tool_response"]["stdout"], "éé\n[...2 bytes truncated by paperclip-rtk]");
        assert_eq!(v["tool_response"]["n"], 1);
        assert_eq!(v["other"], "éééééé");
        // Under the limit: untouched; not JSON: passed through.
        assert_eq!(run_filter(100, r#"{"tool_result":"ok"}"#), r#"{"tool_result":"ok"}"#);
        assert_eq!(run_filter(100, "not json"), "not json");
    }

    #[test]
    fn setup_really_writes_the_filter_and_merges_settings() {
        if !node_available() {
            panic!("node is required for this test");
        }
        let home = std::env::temp_dir().join(format!("ck8s-rtk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        std::fs::write(home.join(".claude/settings.json"), r#"{"model":"x"}"#).unwrap();
        // Run the merge twice: the hook is added once.
        for _ in 0..2 {
            let st = Command::new("sh").arg("-c").arg(&setup_commands(10)[1]).env("HOME", &home).status().unwrap();
            assert!(st.success());
        }
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(home.join(".claude/settings.json")).unwrap()).unwrap();
        assert_eq!(s["model"], "x");
        assert_eq!(s["hooks"]["PostToolUse"].as_array().unwrap().len(), 1);
        assert_eq!(s["hooks"]["PostToolUse"][0]["hooks"][0]["command"], format!("node {FILTER_PATH}"));
    }
}
