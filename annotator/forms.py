"""The admin pages' forms: they check and convert what was posted; the services do the work."""

from __future__ import annotations

from django import forms

from annotator.models import PROJECT_SETTINGS, Arm, Project
from annotator.selectors.projects import annotators_all
from annotator.services.exports import EXPORT_FORMATS, ExportFilters
from annotator.services.imports import CAPTION_FORMATS
from annotator.services.retraining import POLICY, POLICY_METHODS, REWARD, TrainingOptions

# The annotation page renews its lease every 30 s: a shorter lease would lapse between two renewals.
LEASE_SECONDS_MIN = 60


class ProjectCreateForm(forms.ModelForm):
    overlap = forms.IntegerField(
        min_value=1, initial=1, label="Overlap (k)", help_text="how many annotators correct each caption"
    )
    lease_seconds = forms.IntegerField(
        min_value=LEASE_SECONDS_MIN,
        initial=300,
        label="Lease (seconds)",
        help_text="how long a task stays with an annotator who stops working on it; the page renews it every 30 s",
    )
    threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.5,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="p_bad above which a word is highlighted",
    )

    class Meta:
        model = Project
        fields = list(PROJECT_SETTINGS)
        labels = {
            "arm_weight_tokens": "Token highlights",
            "arm_weight_binary": "Binary flag",
            "arm_weight_none": "No highlight",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "annotators": forms.CheckboxSelectMultiple}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["annotators"].queryset = annotators_all()
        self.fields["annotators"].help_text = "members of the group `annotator` who may take this project's tasks"

    def clean(self) -> dict:
        cleaned = super().clean()
        weights = [cleaned.get(name) for name in ("arm_weight_tokens", "arm_weight_binary", "arm_weight_none")]
        if all(weight == 0 for weight in weights):
            # On a field, so the database constraint saying the same is not reported a second time.
            self.add_error("arm_weight_tokens", "give at least one arm a weight above 0: every task needs an arm")
        return cleaned


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Every file chosen in one input; an empty or broken file is left to the import to report by name."""

    widget = MultipleFileInput

    def to_python(self, data: object) -> list:
        return [upload for upload in data or [] if upload]


class ImageUploadForm(forms.Form):
    files = MultipleFileField(
        widget=MultipleFileInput(attrs={"accept": "image/*,.zip"}),
        error_messages={"required": "choose one or more images or .zip files to upload"},
        help_text="PNG, JPEG, GIF, BMP, WebP or TIFF, and .zip files of them; more than 100 files: zip them",
    )


class CaptionImportForm(forms.Form):
    file = forms.FileField(
        error_messages={"required": "choose a caption file to import"},
        widget=forms.FileInput(attrs={"accept": ".jsonl,.csv,.json"}),
    )
    file_format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "from the file name (.jsonl, .csv, .json)"), *CAPTION_FORMATS.items()],
    )


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=list(EXPORT_FORMATS.items()), initial="jsonl")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}), help_text="first submit day"
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="last submit day"
    )
    annotator = forms.ModelChoiceField(queryset=None, required=False, empty_label="every annotator")
    arm = forms.ChoiceField(choices=[("", "every arm"), *Arm.choices], required=False)
    only_corrected = forms.BooleanField(required=False, help_text="leave out captions the annotator did not change")
    include_images = forms.BooleanField(
        required=False, help_text="Hugging Face formats only: embed each image's bytes instead of its path"
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["annotator"].queryset = annotators_all()

    def clean(self) -> dict:
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "the last day comes before the first: nothing would match")
        return cleaned

    def filters(self) -> ExportFilters:
        """The cleaned filters as the export service takes them."""
        annotator = self.cleaned_data["annotator"]
        return ExportFilters(
            date_from=self.cleaned_data["date_from"],
            date_to=self.cleaned_data["date_to"],
            annotator_id=annotator.pk if annotator else None,
            arm=self.cleaned_data["arm"] or None,
            only_corrected=self.cleaned_data["only_corrected"],
        )


class LabelStudioImportForm(forms.Form):
    name = forms.CharField(
        max_length=Project._meta.get_field("name").max_length, help_text="the new project the tasks go into"
    )
    file = forms.FileField(
        label="Label Studio JSON",
        error_messages={"required": "choose a Label Studio JSON export to import"},
        widget=forms.FileInput(attrs={"accept": ".json"}),
        help_text="a JSON export of this app's label_studio format, or Label Studio's own JSON export of that config",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Project.objects.filter(name=name).exists():
            raise forms.ValidationError(f"a project named “{name}” exists already: choose another name")
        return name


class TrainingStartForm(forms.Form):
    """The learning loop's buttons (project page, models page): which project, which model, and how."""

    project = forms.ModelChoiceField(queryset=Project.objects.order_by("name"), empty_label=None)
    kind = forms.ChoiceField(choices=[(REWARD, "Retrain TLDR on corrections"), (POLICY, "Train the captioner")])
    method = forms.ChoiceField(
        choices=[(method, method) for method in POLICY_METHODS],
        required=False,
        initial="ppo_tokens",
        help_text="captioner: PPO with TLDR's token rewards, sentence rewards or a verifier's; or SFT on corrections",
    )
    minutes = forms.FloatField(required=False, min_value=0.01, help_text="training budget; empty: the server's default")
    from_base = forms.BooleanField(
        required=False, label="From the captioner", help_text="TLDR: a fresh model instead of the active one"
    )

    def options(self) -> TrainingOptions:
        return TrainingOptions(
            minutes=self.cleaned_data["minutes"],
            from_base=self.cleaned_data["from_base"],
            method=self.cleaned_data["method"] or "ppo_tokens",
        )
