# sourced by every call: kit, paths, a deadline (seconds after the call's start)
set -uo pipefail
root=$PWD
t0=$(date +%s)
source .devkit/setup-kit.sh >/dev/null
B=$root/build-cuda
export LIT=$B/tools/lit DATA=$FASHION_MNIST_DIR STEPS=1000000
left() { echo $(( DEADLINE - ($(date +%s) - t0) )); }
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
rate() {  # rate LOG.JSONL: steps, median step time, steps/s, last loss
  python3 - "$1" <<'PY'
import json,sys,statistics
rows=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows=[r for r in rows if 'step_s' in r]
s=[r['step_s'] for r in rows[min(50,len(rows)//2):]] or [float('nan')]
m=statistics.median(s)
print(sys.argv[1].split('/')[-2],'steps',rows[-1]['step'],'median step ms %.2f'%(1000*m),'steps/s %.1f'%(1/m),'loss %.4f'%rows[-1]['loss'])
PY
}
build_lit() {  # lit from the snapshot in .devsnap/ into $B (CUDA, no tests, benchmarks or GUI); logs in $root
  cmake -S .devsnap -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$LIT_PREFIX_PATH" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DLIT_CUDA=ON -DLIT_TESTS=OFF -DLIT_BENCH=OFF -DLIT_GUI=OFF >$root/cmake.log 2>&1 ||
    { tail -30 $root/cmake.log; return 1; }
  ninja -C $B lit >$root/build.log 2>&1 || { grep -m5 -A5 error $root/build.log; return 1; }
  stamp build
}
t2i_data() {  # the captioned canvases and their tokens (CPU) into $root/runs/t2i, with the carried tokenizer
  # (.devcalls/spiece.model, the one the carried T5 was trained with) or, without one, a new one
  mkdir -p $root/runs/t2i
  [ -f $root/.devcalls/spiece.model ] && cp $root/.devcalls/spiece.model $root/runs/t2i/
  (cd $root/.devsnap && tools/builtin-t2i.sh data $root/runs/t2i && tools/builtin-t2i.sh tokenizer $root/runs/t2i &&
    tools/builtin-t2i.sh tokens $root/runs/t2i) >$root/runs/t2i/data.log 2>&1
}
teacher_and_eval() {  # the text teacher on (from .devcalls/init if there is one, from scratch, or resumed) until EVAL_SECONDS before the deadline,
  # then its prompt adherence at the last checkpoint; run in .devsnap
  local init=
  [ -f $root/.devcalls/init/pixart-teacher.safetensors ] && init=$root/.devcalls/init
  INIT_TEACHER=$init CKPT_EVERY=1000 TIME_LIMIT=$(($(left) - EVAL_SECONDS)) tools/builtin-t2i.sh \
    teacher $root/runs/t2i
  stamp t2i teacher
  rate $root/runs/t2i/pixart-teacher/log.jsonl
  STUDENTS= timeout $(($(left) - 10)) tools/builtin-t2i.sh eval $root/runs/t2i >$root/runs/t2i/eval.log 2>&1
  stamp eval rc $?
  sed -n '4,8p' $root/runs/t2i/eval-pixart-teacher.txt
}
