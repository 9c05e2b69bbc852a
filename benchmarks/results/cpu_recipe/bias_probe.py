import sys, torch
import prunepeft.models.loading as L
orig = L.load_backbone
def patched(model_cfg, num_labels, seed):
    model, tok = orig(model_cfg, num_labels, seed)
    if num_labels == 1:
        with torch.no_grad():
            model.classifier.bias.fill_(2.7)  # STS-B training labels' mean (probe only)
        print("PROBE: classifier bias set", flush=True)
    return model, tok
L.load_backbone = patched
import prunepeft.commands.baseline as B
B.load_backbone = patched
from prunepeft.cli import main
sys.argv = ["prunepeft", "baseline", "-m", "experiment=table2", "scale=cpu", "seed=1", "task=stsb", "method=lora",
            "extra.runs_root=/work/work/probe/bias"]
main()
