"""Methods beyond PPO, one short module each, every loss next to its equation.

    dpo         Direct Preference Optimization and its IPO / hinge / robust variants (Lab 09)
    grpo        group-normalised advantages, the clipped token loss and the k3 KL (Lab 10)
    rloo        REINFORCE leave-one-out: the baseline from the other k - 1 samples (Lab 10)
    best_of_n   sample n, keep the best by the reward model; KL of best-of-n (Lab 10)

Each function is cross-checked against trl 1.16's own computation in
tests/test_methods_trl.py.

Runs (the folder train_ppo writes, the same evaluation for every method; CLI: moss-lab
dpo | grpo | rloo | best-of-n; tests/test_methods_train.py):

    train_dpo, train_grpo, train_rloo   trl's DPOTrainer, GRPOTrainer, RLOOTrainer
    train_best_of_n                     a ladder of n, no training
    training, train_online              what they share: the evaluation, trl's callback
"""
